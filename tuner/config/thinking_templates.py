"""Chat templates that keep a chain of thought, and their thought markers.

Generated from LLaMA-Factory 0.9.5 (`ReasoningTemplate`s in llamafactory.data.template) so that a
conversion does not import LLaMA-Factory; tests/unit/test_dataset.py checks it against the installed
registry, so an upgrade that changes it fails loudly.
"""

from __future__ import annotations

THINKING_TEMPLATES: dict[str, tuple[str, str]] = {
    "aeva": ("<think>", "</think>"),
    "deepseekr1": ("<think>\n", "\n</think>\n\n"),
    "ernie_vl": ("<think>\n", "\n</think>\n\n"),
    "gemma4": ("<|channel>thought\n", "<channel|>"),
    "gemma4n": ("<|channel>thought\n", "<channel|>"),
    "glm4_5v": ("<think>\n", "\n</think>\n\n"),
    "glm4_7": ("<think>", "</think>"),
    "glm4_moe": ("<think>\n", "\n</think>\n\n"),
    "glm4v": ("<think>\n", "\n</think>\n\n"),
    "glmz1": ("<think>\n", "\n</think>\n\n"),
    "gpt_oss": ("<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>"),
    "hy3": ("<think>", "</think>"),
    "keye_vl": ("<think>\n", "\n</think>\n\n"),
    "kimi_vl": ("◁think▷", "◁/think▷"),
    "mimo": ("<think>\n", "\n</think>\n\n"),
    "mimo_v2": ("<think>", "</think>"),
    "mimo_vl": ("<think>\n", "\n</think>\n\n"),
    "minimax2": ("<think>\n", "\n</think>\n\n"),
    "qwen3": ("<think>\n", "\n</think>\n\n"),
    "qwen3_5": ("<think>\n", "\n</think>\n\n"),
    "qwen3_6": ("<think>\n", "\n</think>\n\n"),
    "qwen3_omni": ("<think>\n", "\n</think>\n\n"),
    "qwen3_vl": ("<think>\n", "\n</think>\n\n"),
    "seed_oss": ("<seed:think>", "</seed:think>"),
    "youtu": ("<think>\n", "\n</think>\n\n"),
}
