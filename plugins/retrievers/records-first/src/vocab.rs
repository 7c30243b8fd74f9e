//! What the words of a question mean in the record: lay and clinical names
//! of common results (with their LOINC codes) and of the drugs given for
//! common complaints. A record matches by code or, where codes differ
//! between sources, by a word of its display.

/// A result a clinician asks about: the words that name it, its LOINC codes
/// and the display words that find it in records without those codes.
pub struct Result {
    pub words: &'static [&'static str],
    pub loinc: &'static [&'static str],
    pub display: &'static [&'static str],
}

/// Common results, most specific first ("ldl" before "cholesterol").
pub const RESULTS: &[Result] = &[
    Result {
        words: &["a1c", "hba1c", "glycated", "glycosylated"],
        loinc: &["4548-4", "17856-6", "4549-2"],
        display: &["a1c"],
    },
    Result {
        words: &["ldl"],
        loinc: &["13457-7", "18262-6", "2089-1"],
        display: &["ldl", "low density"],
    },
    Result {
        words: &["hdl"],
        loinc: &["2085-9"],
        display: &["hdl", "high density"],
    },
    Result {
        words: &["triglyceride", "triglycerides"],
        loinc: &["2571-8"],
        display: &["triglyceride"],
    },
    Result {
        words: &["cholesterol"],
        loinc: &["2093-3"],
        display: &["cholesterol"],
    },
    Result {
        words: &["glucose", "sugar"],
        loinc: &["2345-7", "2339-0", "41653-7"],
        display: &["glucose"],
    },
    Result {
        words: &["potassium"],
        loinc: &["2823-3", "6298-4"],
        display: &["potassium"],
    },
    Result {
        words: &["sodium"],
        loinc: &["2951-2", "2947-0"],
        display: &["sodium"],
    },
    Result {
        words: &["creatinine"],
        loinc: &["2160-0", "38483-4"],
        display: &["creatinine"],
    },
    Result {
        words: &["egfr", "gfr", "kidney function", "renal function"],
        loinc: &["33914-3", "62238-1", "48642-3", "48643-1", "98979-8"],
        display: &["gfr", "glomerular"],
    },
    Result {
        words: &["hemoglobin", "haemoglobin", "hgb", "hb"],
        loinc: &["718-7"],
        display: &["hemoglobin", "haemoglobin"],
    },
    Result {
        words: &["platelet", "platelets"],
        loinc: &["777-3"],
        display: &["platelet"],
    },
    Result {
        words: &["white cell", "white blood", "wbc", "leukocytes"],
        loinc: &["6690-2", "26464-8"],
        display: &["leukocyte", "white blood"],
    },
    Result {
        words: &["tsh", "thyroid"],
        loinc: &["3016-3", "11580-8"],
        display: &["thyrotropin", "tsh"],
    },
    Result {
        words: &["inr"],
        loinc: &["6301-6", "34714-6"],
        display: &["inr"],
    },
    Result {
        words: &["blood pressure", "bp"],
        loinc: &["85354-9", "55284-4", "8480-6", "8462-4"],
        display: &["blood pressure"],
    },
    Result {
        words: &["heart rate", "pulse"],
        loinc: &["8867-4"],
        display: &["heart rate", "pulse"],
    },
    Result {
        words: &["weight"],
        loinc: &["29463-7", "3141-9"],
        display: &["weight"],
    },
    Result {
        words: &["bmi", "body mass"],
        loinc: &["39156-5"],
        display: &["body mass", "bmi"],
    },
    Result {
        words: &["temperature", "fever"],
        loinc: &["8310-5"],
        display: &["temperature"],
    },
    Result {
        words: &["oxygen saturation", "spo2", "o2 sat"],
        loinc: &["2708-6", "59408-5"],
        display: &["oxygen saturation"],
    },
];

/// Drugs given for a complaint, by ingredient name (records' codes are
/// usually clinical drugs, not ingredients, so names match more of them).
pub struct DrugClass {
    pub words: &'static [&'static str],
    pub drugs: &'static [&'static str],
}

pub const DRUG_CLASSES: &[DrugClass] = &[
    DrugClass {
        words: &[
            "pain",
            "analgesic",
            "analgesics",
            "painkiller",
            "painkillers",
            "headache",
            "arthritis",
        ],
        drugs: &[
            "acetaminophen",
            "paracetamol",
            "ibuprofen",
            "naproxen",
            "diclofenac",
            "celecoxib",
            "meloxicam",
            "aspirin",
            "tramadol",
            "codeine",
            "oxycodone",
            "hydrocodone",
            "morphine",
            "hydromorphone",
            "fentanyl",
            "buprenorphine",
            "tapentadol",
            "gabapentin",
            "pregabalin",
            "ketorolac",
        ],
    },
    DrugClass {
        words: &["blood pressure", "hypertension", "bp"],
        drugs: &[
            "lisinopril",
            "enalapril",
            "ramipril",
            "losartan",
            "valsartan",
            "olmesartan",
            "amlodipine",
            "nifedipine",
            "hydrochlorothiazide",
            "chlorthalidone",
            "metoprolol",
            "atenolol",
            "carvedilol",
            "spironolactone",
        ],
    },
    DrugClass {
        words: &["diabetes", "sugar", "glucose"],
        drugs: &[
            "metformin",
            "insulin",
            "glipizide",
            "glyburide",
            "glimepiride",
            "sitagliptin",
            "empagliflozin",
            "dapagliflozin",
            "canagliflozin",
            "liraglutide",
            "semaglutide",
            "dulaglutide",
            "pioglitazone",
        ],
    },
    DrugClass {
        words: &["cholesterol", "lipids", "statin", "statins"],
        drugs: &[
            "atorvastatin",
            "simvastatin",
            "rosuvastatin",
            "pravastatin",
            "lovastatin",
            "ezetimibe",
        ],
    },
    DrugClass {
        words: &["infection", "antibiotic", "antibiotics"],
        drugs: &[
            "amoxicillin",
            "penicillin",
            "cephalexin",
            "azithromycin",
            "doxycycline",
            "ciprofloxacin",
            "levofloxacin",
            "nitrofurantoin",
            "trimethoprim",
            "clindamycin",
            "cefuroxime",
            "ceftriaxone",
        ],
    },
    DrugClass {
        words: &[
            "blood thinner",
            "blood thinners",
            "anticoagulant",
            "anticoagulants",
            "clot",
            "clots",
        ],
        drugs: &[
            "warfarin",
            "apixaban",
            "rivaroxaban",
            "dabigatran",
            "edoxaban",
            "heparin",
            "enoxaparin",
            "clopidogrel",
        ],
    },
    DrugClass {
        words: &["asthma", "copd", "breathing", "inhaler", "inhalers"],
        drugs: &[
            "albuterol",
            "salbutamol",
            "fluticasone",
            "budesonide",
            "tiotropium",
            "salmeterol",
            "formoterol",
            "montelukast",
            "ipratropium",
        ],
    },
    DrugClass {
        words: &["depression", "anxiety", "mood"],
        drugs: &[
            "sertraline",
            "fluoxetine",
            "citalopram",
            "escitalopram",
            "paroxetine",
            "venlafaxine",
            "duloxetine",
            "bupropion",
            "mirtazapine",
            "trazodone",
        ],
    },
];

/// Whether `text` (lowercase) contains `phrase` as whole words.
pub fn has(text: &str, phrase: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let wanted: Vec<&str> = phrase.split(' ').collect();
    words.windows(wanted.len()).any(|w| w == wanted.as_slice())
}

/// Whether `text` (lowercase) has a word starting with one of `stems`.
pub fn has_stem(text: &str, stems: &[&str]) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| stems.iter().any(|s| w.starts_with(s)))
}
