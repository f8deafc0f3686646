"""The activation estimate against what a real Qwen3 layer keeps, measured on the CPU.

A tiny Qwen3 (transformers' own modeling code, the code LLaMA-Factory trains) runs forward and
backward under a dispatch mode that counts the bytes of every tensor created and alive (parameters
and their gradients left out: ZeRO-3 partitions those, and they are in the model states). Its peak
is what torch.cuda.max_memory_allocated shows beyond the model states. FlashAttention-2 needs a GPU;
SDPA's CPU kernel keeps what it keeps (queries, keys, values, output, log-sum-exp) plus its mask.
"""

from __future__ import annotations

import pytest

from tuner.config.memory import ModelShape, Run, activation_bytes, eval_activation_bytes

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SHAPE = {"hidden": 256, "intermediate": 768, "heads": 8, "kv_heads": 2, "head_dim": 32}


def measured_peak(
    attention: str, dtype: object, layers: int, vocab: int, checkpointing: bool, b=2, s=128, evaluate=False
) -> int:
    """The peak of one training step's forward and backward, or (`evaluate`) of one evaluation forward
    with its loss, as the Trainer evaluates: eval mode, no gradients."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    torch.manual_seed(0)
    config = transformers.Qwen3Config(
        hidden_size=SHAPE["hidden"],
        intermediate_size=SHAPE["intermediate"],
        num_hidden_layers=layers,
        num_attention_heads=SHAPE["heads"],
        num_key_value_heads=SHAPE["kv_heads"],
        head_dim=SHAPE["head_dim"],
        vocab_size=vocab,
        tie_word_embeddings=False,
        attn_implementation=attention,
        use_cache=False,
    )
    model = transformers.Qwen3ForCausalLM(config).to(dtype)
    model.train(not evaluate)
    if checkpointing and not evaluate:  # as LLaMA-Factory turns it on (use_reentrant_gc: true)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.enable_input_require_grads()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    class Live(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, tuple[int, int]] = {}
            self.peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for key, (ref, _) in list(self.live.items()):
                if torch.UntypedStorage._expired(ref):
                    torch.UntypedStorage._free_weak_ref(ref)
                    del self.live[key]
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    storage = t.untyped_storage()
                    key = storage.data_ptr()
                    if key and key not in self.live and key not in params:
                        self.live[key] = (storage._weak_ref(), storage.nbytes())
            self.peak = max(self.peak, sum(n for _, n in self.live.values()))
            return out

    mode = Live()

    def drop_grad(p: object) -> None:  # ZeRO-3 reduces each gradient into its partition at once
        mode.live.pop(p.grad.untyped_storage().data_ptr(), None)
        p.grad = None

    for p in model.parameters():
        p.register_post_accumulate_grad_hook(drop_grad)
    ids = torch.randint(0, vocab, (b, s))
    mask = torch.ones(b, s, dtype=torch.long)
    mask[0, -3:] = 0  # padding, as LLaMA-Factory's collator pads
    if evaluate:
        with torch.no_grad(), mode:
            outputs = model(input_ids=ids, attention_mask=mask, labels=ids)  # noqa: F841 (kept, as the Trainer keeps it)
        return mode.peak
    with mode:
        model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    return mode.peak


@pytest.mark.parametrize(
    ("attention", "dtype", "checkpointing", "layers", "high"),
    [
        # Measured error of the estimate (estimate / measured - 1), vocabulary 1000:
        ("sdpa", "bfloat16", False, 2, 0.02),  # +1.1%
        ("sdpa", "bfloat16", False, 4, 0.02),  # +0.6%
        ("sdpa", "bfloat16", True, 2, 0.15),  # +12.0%: one layer's backward is taken whole
        ("eager", "bfloat16", False, 2, 0.02),  # +0.8%
        ("eager", "bfloat16", True, 2, 0.12),  # +8.7%
        ("sdpa", "float32", False, 2, 0.03),  # +1.4%
    ],
)
def test_activation_estimate_against_the_measured_peak(attention, dtype, checkpointing, layers, high):
    measured = measured_peak(attention, getattr(torch, dtype), layers, 1000, checkpointing)
    shape = ModelShape(layers=layers, vocab=1000, qk_norm=True, **SHAPE)
    run = Run(2, 128, attention=attention, checkpointing=checkpointing, act_bytes=2 if dtype == "bfloat16" else 4)
    error = activation_bytes(shape, run) / measured - 1
    print(f"{attention} {dtype} checkpointing={checkpointing} layers={layers}: {error:+.2%}")
    assert 0 <= error <= high, f"estimate off by {error:+.1%} of the measured {measured} bytes"


@pytest.mark.parametrize(
    ("vocab", "dtype", "high"),
    [
        # Measured error of the evaluation estimate, SDPA, 2 x 128 tokens:
        (8000, "bfloat16", 0.05),  # the logits dominate, as with a real vocabulary
        (8000, "float32", 0.05),  # fp32 logits: no upcast copy
        (1000, "bfloat16", 0.25),  # small vocabulary: the SwiGLU's working set, taken whole
    ],
)
def test_evaluation_estimate_against_the_measured_peak(vocab, dtype, high):
    measured = measured_peak("sdpa", getattr(torch, dtype), 2, vocab, False, evaluate=True)
    shape = ModelShape(layers=2, vocab=vocab, qk_norm=True, **SHAPE)
    run = Run(8, 128, eval_batch=2, act_bytes=2 if dtype == "bfloat16" else 4)
    error = eval_activation_bytes(shape, run) / measured - 1
    print(f"evaluation, vocabulary {vocab}, {dtype}: {error:+.2%}")
    assert 0 <= error <= high, f"estimate off by {error:+.1%} of the measured {measured} bytes"
