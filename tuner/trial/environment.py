"""What a trial's processes inherit from the driver: an allow-list, never the driver's whole environment.

The driver's environment can hold what no trial needs and no trial file may show: a storage URL
with its password (`TUNER_STORAGE`), cloud keys, tokens of unrelated tools. A trial gets the
variables that the system, CUDA/NCCL, torch, DeepSpeed, the Hugging Face stack, LLaMA-Factory and
wandb read, and nothing else; the block's own credentials are added by name (prepare.launch_env).
"""

from __future__ import annotations

from collections.abc import Mapping

# A table, one line per group: the system; TLS and proxies; LLaMA-Factory's switches.
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "HOSTNAME",
    "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "CC", "CXX", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHASHSEED",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB", "DISABLE_VERSION_CHECK", "LLAMAFACTORY_VERBOSITY",
    "FORCE_CHECK_IMPORTS", "ALLOW_EXTRA_ARGS", "RECORD_VRAM", "OPTIM_TORCH",
})  # fmt: skip
# A table, one line per group: locale and desktop; GPUs and collectives; torch and DeepSpeed;
# threads; the Hugging Face stack and the hubs; wandb.
ALLOWED_PREFIXES = (
    "LC_", "XDG_", "CONDA_",
    "CUDA_", "NCCL_", "NVIDIA_", "CUDNN_", "CUBLAS_", "GLOO_", "TP_SOCKET_",
    "TORCH_", "PYTORCH_", "TORCHINDUCTOR_", "TRITON_", "DS_", "DEEPSPEED_",
    "OMP_", "MKL_", "KMP_", "OPENBLAS_",
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "DATASETS_", "MODELSCOPE_", "OPENMIND_",
    "WANDB_",
)  # fmt: skip


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` a trial may see."""
    return {k: v for k, v in environ.items() if k in ALLOWED_NAMES or k.startswith(ALLOWED_PREFIXES)}
