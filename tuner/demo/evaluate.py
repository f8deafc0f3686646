"""The demo's custom evaluator: exact-match accuracy of generated answers on the held-out questions.

Use as `experiment.evaluator: {entry_point: "tuner.demo.evaluate:exact_match"}` with
`experiment.metric: exact_match` (`direction: maximize`). Greedy `generate` of the trained model on
each held-out question (the eval split tuner converted: `{eval_file}`), the answer compared with the
reference after stripping whitespace and any think block. Writes `exact_match` (all questions),
`exact_match_arithmetic` (the "What is a + b?" questions), `similarity` (mean character-level
similarity to the reference, difflib's ratio: partial credit while a small model is still far from
exact answers) and `n` to `{output_json}`.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

_THINK = re.compile(r"<think>.*?</think>", re.S)


def _questions(eval_file: Path) -> list[tuple[list[dict[str, str]], str]]:
    """(the conversation up to the last user turn, the reference answer) per held-out sample."""
    rows = []
    for line in eval_file.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        if messages and messages[-1]["role"] == "assistant":
            rows.append((messages[:-1], messages[-1]["content"]))
    return rows


def normalize(text: str) -> str:
    return " ".join(_THINK.sub("", text).split())


def exact_match(model_dir: str, eval_file: str, output_json: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    hits, arithmetic, similar = [], [], []
    for prompt, reference in _questions(Path(eval_file)):
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False, enable_thinking=False)
        inputs = tokenizer(text, return_tensors="pt")
        budget = len(tokenizer(reference)["input_ids"]) + 8
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=budget, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        hit = normalize(answer) == normalize(reference)
        hits.append(hit)
        similar.append(difflib.SequenceMatcher(None, normalize(answer), normalize(reference)).ratio())
        if prompt[-1]["content"].startswith("What is "):
            arithmetic.append(hit)
    result = {
        "exact_match": sum(hits) / len(hits) if hits else 0.0,
        "exact_match_arithmetic": sum(arithmetic) / len(arithmetic) if arithmetic else 0.0,
        "similarity": sum(similar) / len(similar) if similar else 0.0,
        "n": len(hits),
    }
    Path(output_json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    exact_match(*sys.argv[1:4])
