"""The transformers side of `cargo xtask bench answers`: the same GGUF
(SmolLM2-135M-Instruct Q4_1, dequantised to float32 by transformers), the same
chat prompt (written by `medmemory-bench answers --prompt-out`), the same
thread count; time to first token, prefill and decode tokens/s.

Usage: python reference_generator.py MODEL_DIR GGUF_FILE PROMPT.json
"""

import json
import os
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

DECODE = 64
RUNS = 3


def main() -> None:
    folder, gguf, prompt_file = sys.argv[1:4]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    model.eval()
    with open(prompt_file) as f:
        messages = json.load(f)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    if not isinstance(ids, torch.Tensor):
        ids = ids["input_ids"]
    ttft, decode = [], []
    with torch.no_grad():
        for _ in range(RUNS):
            start = time.perf_counter()
            out = model(ids, use_cache=True)
            first = time.perf_counter() - start
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(DECODE - 1):
                out = model(token, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1:].argmax(-1)
            decode.append((DECODE - 1) / (time.perf_counter() - start))
            ttft.append(first)
    t = statistics.median(ttft)
    print(
        f"transformers {torch.__version__}: time to first token {t:.2f} s, "
        f"prefill {ids.shape[1] / t:.0f} tok/s, decode {statistics.median(decode):.1f} tok/s "
        f"({ids.shape[1]} prompt tokens, {threads} threads)"
    )


if __name__ == "__main__":
    main()
