"""Golden tokens for MedMemory's burn decoder: Hugging Face transformers loads
the same GGUF file (SmolLM2-135M-Instruct, Q4_1, dequantised to float32) and
generates greedily from fixed chat prompts. The output is committed as
`tests/fixtures/llm-golden.jsonl`; `model::llm_matches_the_golden_tokens`
requires the same prompt ids and the same generated ids.

Usage: python llm_golden.py MODEL_DIR GGUF_FILE OUT.jsonl
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

SYSTEM = "You answer questions about a patient's record. Be brief."
PROMPTS = [
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": "Evidence [1]: HbA1c 7.2 % on 2024-03-05. Evidence [2]: metformin "
            "500 mg twice daily.\n\nQuestion: What was the last HbA1c?",
        },
    ],
    [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "List three symptoms of high blood pressure."},
    ],
    [
        {"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
        {"role": "user", "content": "Write one sentence about 2 + 2 = 4, and 1234 apples."},
    ],
]
NEW_TOKENS = 48


def main() -> None:
    folder, gguf, out = sys.argv[1:4]
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=gguf, dtype=torch.float32
    )
    model.eval()
    with open(out, "w") as f:
        for messages in PROMPTS:
            ids = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt"
            )
            if not isinstance(ids, torch.Tensor):
                ids = ids["input_ids"]
            with torch.no_grad():
                generated = model.generate(
                    ids,
                    max_new_tokens=NEW_TOKENS,
                    do_sample=False,
                    eos_token_id=[2],
                    pad_token_id=2,
                )
            new = generated[0, ids.shape[1] :].tolist()
            if new and new[-1] == 2:
                new = new[:-1]
            line = {
                "messages": messages,
                "prompt_ids": ids[0].tolist(),
                "greedy": new,
                "text": tokenizer.decode(new),
            }
            f.write(json.dumps(line) + "\n")
            print(json.dumps(line["text"]))


if __name__ == "__main__":
    main()
