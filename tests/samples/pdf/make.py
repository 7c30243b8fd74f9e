"""Writes the PDF samples: `text.pdf` (two pages with a text layer, the second
page's content Flate-compressed) and `scanned.pdf` (one page that is only an
image, as a scanner makes). Run with python3; standard library only."""
import zlib

def pdf(objects):
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out

def stream(data, compress=False):
    if compress:
        data = zlib.compress(data)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

def text_ops(lines):
    ops = b"BT /F1 12 Tf 72 720 Td 14 TL\n"
    for line in lines:
        ops += b"(" + line.encode("latin-1") + b") Tj T*\n"
    return ops + b"ET"

page1 = ["Discharge summary", "", "Diagnosis:", "Community acquired pneumonia, right lower lobe.",
         "", "Treatment:", "Amoxicillin 500 mg three times daily for seven days."]
page2 = ["Follow-up:", "Chest X-ray in six weeks to confirm resolution."]
font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
text = pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 6 0 R >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 7 0 R >>",
    font,
    stream(text_ops(page1)),
    stream(text_ops(page2), compress=True),
])
open("text.pdf", "wb").write(text)

pixels = bytes([255, 255, 255, 0] * 16)  # an 8x8 grey image
scanned = pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>",
    b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n" % len(pixels) + pixels + b"\nendstream",
    stream(b"q 612 0 0 792 0 0 cm /Im1 Do Q"),
])
open("scanned.pdf", "wb").write(scanned)
