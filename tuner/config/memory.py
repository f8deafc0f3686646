"""Peak GPU memory of one full fine-tune configuration: model states + activations + a fixed overhead.

Pure arithmetic on the model's `config.json` (no weights, no torch): the model states are
DeepSpeed's own ZeRO estimate (`estimate_zero3_model_states_mem_needs`, reproduced formula for
formula, its offload options and largest-layer term included); the activations follow Korthikanti
et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", section 4: what each
op of a layer keeps for backward, per token), redone for the Hugging Face LLaMA/Qwen layer that
LLaMA-Factory trains (RMSNorm, rotary, GQA, SwiGLU, no dropout) and checked op by op against what
autograd saves (tests/unit/test_memory_activations.py). Bytes throughout; GiB only for people.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

GIB = 1024**3

# Memory a training process holds beyond what PyTorch's allocator hands out (what
# torch.cuda.max_memory_allocated measures): the CUDA context with its loaded kernels (about
# 0.5-0.6 GiB per process on H100/A100 with CUDA 12 and lazy module loading, the figure PyTorch's
# "CUDA semantics" notes give for the context), NCCL's communication buffers (NCCL_BUFFSIZE 4 MiB
# per channel and peer: a few hundred MiB on an 8-GPU node) and cuBLAS/cuDNN workspaces. Rounded up
# to 2 GiB; not measured yet: torch.cuda.max_memory_allocated, what trials record, leaves it out.
FIXED_OVERHEAD_BYTES = 2 * GIB

# The loss head: the (tokens x vocab) logits dominate it. Transformers' ForCausalLMLoss upcasts
# them to fp32 and cross_entropy keeps log_softmax's fp32 output for backward (4 bytes); at the
# start of backward nll_loss's fp32 gradient (4) and log_softmax's fp32 input gradient (4) are live
# beside it: 12 bytes per logit at the peak (the 16-bit logits, 2 bytes, are freed with the outputs).
LOGIT_PEAK_BYTES = 12

# Bumped whenever the formulas change: a study refits its margin only from trials estimated by the
# same ones (a resumed older study's ratios would scale every new estimate). 2: evaluation counted.
ESTIMATE_VERSION = 2

# Gradients in flight while one layer runs backward, in units of e x intermediate per token: the
# SwiGLU's input gradients at the MLP's backward. Measured on the CPU by counting live tensors of a
# Qwen3 layer's forward and backward (3.0 with and without checkpointing; see the activation tests).
BACKWARD_WORKING = 3

ATTENTIONS = ("fa2", "sdpa", "eager")


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder-only transformer's `config.json` that set its memory."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False  # Qwen3: RMSNorm on every head's queries and keys

    @property
    def layer_params(self) -> int:
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        norms = 2 * h + (2 * self.head_dim if self.qk_norm else 0)
        return attention + 3 * h * self.intermediate + norms

    @property
    def total_params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * self.layer_params + self.hidden

    @property
    def largest_layer_params(self) -> int:
        """DeepSpeed's `model_to_params`: the most parameters one module holds itself (the embedding
        or lm_head for every current LLM; an MLP or attention projection otherwise)."""
        q = self.heads * self.head_dim
        return max(self.vocab * self.hidden, self.hidden * self.intermediate, self.hidden * q)


def model_shape(config: dict[str, Any], *, file: str = "config.json") -> ModelShape:
    """A ModelShape from a Hugging Face `config.json` mapping (a multimodal one's `text_config`)."""
    config = config.get("text_config") or config
    required = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size")
    missing = [k for k in required if not isinstance(config.get(k), int)]
    if missing:
        raise ConfigError(
            f"lacks {missing}: not a decoder-only transformer config tuner can estimate",
            file=file,
            key=missing[0],
            fix="point model_name_or_path at a Hugging Face model folder with a complete config.json",
        )
    if any(k in config for k in ("num_experts", "n_routed_experts", "num_local_experts")):
        raise ConfigError(
            "is a mixture-of-experts model; the memory estimate covers dense models only",
            file=file,
            key="num_experts",
            fix="no estimate is made for it: trials run unchecked",
        )
    heads = config["num_attention_heads"]
    model_type = str(config.get("model_type", ""))
    return ModelShape(
        hidden=config["hidden_size"],
        layers=config["num_hidden_layers"],
        intermediate=config["intermediate_size"],
        heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or config["hidden_size"] // heads),
        vocab=config["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=bool(config.get("attention_bias", model_type == "qwen2")),
        qk_norm=model_type.startswith("qwen3"),
    )


def read_model_shape(model_dir: str | Path) -> ModelShape:
    """The shape of the model in a local folder, from its `config.json` alone."""
    path = Path(model_dir).expanduser() / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"cannot be read: {e}",
            file=str(path),
            fix="point model_name_or_path at a local model folder (a hub id has no config.json here)",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object", file=str(path))
    return model_shape(data, file=str(path))


# -- model states: DeepSpeed's formulas ------------------------------------------------------------
def zero3_model_states(
    total_params: int,
    largest_layer_params: int,
    gpus_per_node: int = 1,
    nodes: int = 1,
    *,
    offload_optimizer: bool = False,
    offload_param: bool = False,
) -> int:
    """GPU bytes per GPU of `deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs`:
    4 bytes per parameter of the largest layer (its gathered 16-bit params and grads), plus 18 bytes
    per parameter partitioned over all GPUs (16-bit params and grads, fp32 master, Adam m and v, fp32
    grads); with the optimizer offloaded only the 16-bit params (2) stay; with params too, nothing."""
    largest = 4 * largest_layer_params
    gpus = nodes * gpus_per_node
    if offload_optimizer:
        return largest if offload_param else largest + int(2 * total_params / gpus)
    return largest + int(18 * total_params / gpus)


def zero2_model_states(total_params: int, gpus: int = 1, *, offload_optimizer: bool = False) -> int:
    """GPU bytes per GPU of `deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs`."""
    return 2 * total_params if offload_optimizer else 2 * total_params + int(18 * total_params / gpus)


# -- activations -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """What a trial's configuration sets for memory, besides the model."""

    micro_batch: int  # per_device_train_batch_size
    seq_len: int  # cutoff_len: the longest micro-batch a trial can meet
    gpus_per_node: int = 1
    nodes: int = 1
    zero_stage: int | None = 3
    offload_optimizer: bool = False
    offload_param: bool = False
    checkpointing: bool = True  # LLaMA-Factory's default (disable_gradient_checkpointing: false)
    attention: str = "sdpa"  # fa2 (also fa3) | sdpa | eager
    act_bytes: int = 2  # 2 with bf16/fp16, 4 in fp32
    fused_loss: bool = False  # enable_liger_kernel: the fused linear cross-entropy never builds the logits
    eval_batch: int | None = None  # per_device_eval_batch_size; None: micro_batch (as tuner renders it)
    eval_loss: bool = True  # False with predict_with_generate: the evaluation computes no loss

    @property
    def eval_micro_batch(self) -> int:
        return self.eval_batch or self.micro_batch


def _head_input_bytes(h: int, e: int) -> int:
    """Per token: the final RMSNorm (fp32 input copy, 1/rms), lm_head's input, token ids and labels."""
    return 4 * h + 2 * e * h + 4 + 16


def layer_bytes_per_token(m: ModelShape, run: Run) -> int:
    """Bytes one decoder layer keeps for backward per token (Korthikanti et al. section 4.1 redone
    for the HF LLaMA/Qwen layer; e = the activations' bytes):
      RMSNorm (x2): fp32 copy of its input 4h, normalized value e*h, 1/rms 4; its output, kept by
        the q/k/v and gate/up projections: e*h
      queries e*ad, keys and values e*kvd each (e*ad each where eager or SDPA repeats them to every
        head), the attention output kept by o_proj e*ad, FlashAttention's log-sum-exp 4 per head
      Qwen3's q/k norms: (4 + e) per element of q and k, 4 per head
      SwiGLU MLP: gate output, SiLU output, up output and their product, e*I each
      attention scores, per token and head, s of them: eager keeps softmax's fp32 output (4) and
        its 16-bit copy (e); SDPA with LLaMA-Factory's padding mask keeps the mask (e per token)."""
    e, h, i = run.act_bytes, m.hidden, m.intermediate
    ad, kvd = m.heads * m.head_dim, m.kv_heads * m.head_dim
    total = 2 * (4 * h + e * h + 4) + 2 * e * h
    if m.qk_norm:
        total += (4 + e) * (ad + kvd) + 4 * (m.heads + m.kv_heads)
    kv_width = kvd if run.attention == "fa2" else ad
    total += e * ad + 2 * e * kv_width + e * ad + 4 * e * i
    s = run.seq_len
    if run.attention == "eager":
        total += (4 + (e if e != 4 else 0)) * m.heads * s
    else:
        total += 4 * m.heads + (e * s if run.attention == "sdpa" else 0)
    return total


def activation_bytes(m: ModelShape, run: Run) -> int:
    """Peak activation bytes of one micro-batch: what the layers keep (all of it, or with gradient
    checkpointing each layer's input, 2sbhL in the paper), the final norm and lm_head input, plus the
    larger of the loss head's peak and the working memory of one layer's backward (the gradients in
    flight; with checkpointing also the layer's recomputed activations)."""
    tokens = run.micro_batch * run.seq_len
    e, h = run.act_bytes, m.hidden
    layer = layer_bytes_per_token(m, run)
    kept = (e * h if run.checkpointing else layer) * m.layers
    head = (4 * h + e * h) if run.fused_loss else LOGIT_PEAK_BYTES * m.vocab + e * h
    working = max(head, (layer if run.checkpointing else 0) + BACKWARD_WORKING * e * m.intermediate)
    return tokens * (kept + _head_input_bytes(h, e) + working)


def eval_activation_bytes(m: ModelShape, run: Run) -> int:
    """Peak activation bytes of one evaluation micro-batch (nothing kept for backward): the lm_head's
    input and the loss head, where the logits the model returns, their fp32 upcast in ForCausalLMLoss
    (none when fp32 already) and log_softmax's fp32 output are alive at once, also with the fused loss
    (Liger skips the logits in training only); or the SwiGLU's working set for a small vocabulary.
    LLaMA-Factory evaluates at per_device_eval_batch_size, often set above the training batch: on an
    H200 a 0.5B Qwen3 trained at 8 x 1024 tokens and evaluated at 20 peaked at 1.53 x the training
    estimate (docs/benchmarks.md section 4). 0 with predict_with_generate (no labels: not modelled)."""
    if not run.eval_loss:
        return 0
    e, h = run.act_bytes, m.hidden
    logit = e + (4 if e != 4 else 0) + 4  # returned logits, their fp32 upcast, log_softmax's output
    return run.eval_micro_batch * run.seq_len * (_head_input_bytes(h, e) + max(logit * m.vocab, 4 * e * m.intermediate))


@dataclass(frozen=True)
class Estimate:
    model_states: int
    activations: int  # the larger of a training step's and an evaluation's
    overhead: int = FIXED_OVERHEAD_BYTES
    phase: str = "training"  # which of the two peaks, as people read it: "training", or the evaluation's batch

    @property
    def allocated(self) -> int:
        """What torch.cuda.max_memory_allocated would show: model states + activations."""
        return self.model_states + self.activations

    @property
    def total(self) -> int:
        return self.allocated + self.overhead

    def describe(self) -> str:
        return (
            f"{gib(self.total)} GiB (model states {gib(self.model_states)} + activations "
            f"{gib(self.activations)}{'' if self.phase == 'training' else ' in ' + self.phase} + overhead "
            f"{gib(self.overhead)})"
        )


def model_states_bytes(m: ModelShape, run: Run) -> int:
    gpus = run.gpus_per_node * run.nodes
    if run.zero_stage == 3:
        return zero3_model_states(
            m.total_params,
            m.largest_layer_params,
            run.gpus_per_node,
            run.nodes,
            offload_optimizer=run.offload_optimizer,
            offload_param=run.offload_param,
        )
    if run.zero_stage == 2:
        return zero2_model_states(m.total_params, gpus, offload_optimizer=run.offload_optimizer)
    # No partitioning (no DeepSpeed, ZeRO-0 or -1): every GPU holds all 18 bytes per parameter.
    return zero3_model_states(m.total_params, m.largest_layer_params)


def estimate(m: ModelShape, run: Run) -> Estimate:
    """Peak memory per GPU of this configuration: a training step or an evaluation, whichever is larger."""
    if run.attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {run.attention!r}")
    training, evaluation = activation_bytes(m, run), eval_activation_bytes(m, run)
    if evaluation > training:
        phase = f"evaluation at per_device_eval_batch_size {run.eval_micro_batch}"
        return Estimate(model_states_bytes(m, run), evaluation, phase=phase)
    return Estimate(model_states_bytes(m, run), training)


def gib(n: float) -> float:
    return round(n / GIB, 2)
