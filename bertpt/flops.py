"""Model FLOPs of a BERT pretraining step, and the peak FLOPS that MFU divides by.

Model FLOPs count the matrix multiplications that the model needs for the real (unpadded) tokens,
2 FLOPs per multiply-add, whatever an implementation actually runs: padding, a dense MLM head over
every position, and recomputation for activation checkpointing are not counted (MFU as defined in
PaLM, Chowdhery et al. 2022, appendix B). Embedding lookups, biases, LayerNorm, GELU, softmax,
dropout and the losses are left out too: they are not matmuls and are small.

For one sequence of n real tokens with m masked (predicted) positions, a model with `layers`
layers, hidden size H, FFN size I and vocabulary V, the forward pass is

    per layer:  Q, K, V, output projections    4 · 2nH²  = 8nH²
                FFN (H→I, I→H)                 2 · 2nHI  = 4nHI
                scores QKᵀ and (probs)·V       2 · 2n²H  = 4n²H    (all heads together: heads · d = H)
    pooler ([CLS] only) + NSP classifier        2H² + 2·2H
    MLM head on the m predicted positions      m · (2H² + 2HV)     (transform, then the tied H→V decoder)

    forward = layers · (8H² + 4HI) · n + layers · 4H · n² + 2H² + 4H + m · (2H² + 2HV)

and a training step is 3 × forward: backward computes, for every matmul, the gradient with respect
to its input and to its weight, each as costly as the forward product. Summed over a batch this
needs only Σn, Σn², the number of sequences and Σm. (6 · N · tokens, with N the encoder's
parameters, is the first term; the n² term is attention, the last the sparse head.)

MFU = achieved model FLOPs per second per device / the device's peak. Peaks are dense (no 2:4
sparsity) tensor-core figures from the vendors' datasheets (below). CPUs are not in the table:
their peak depends on core count, clocks and SIMD units that software cannot read reliably (shared
vCPUs, AVX-512 executed as two 256-bit halves on AMD Zen 4), so bertpt reports TFLOPS there and
MFU only when the peak is given (`--peak_tflops`).
"""

from __future__ import annotations

# Dense peak TFLOPS per device, (bf16, fp16, fp32). fp32 is the non-tensor-core figure: PyTorch does
# not use TF32 for matmuls unless asked (torch.backends.cuda.matmul.allow_tf32 is False by default).
# Sources: NVIDIA H100 datasheet (nvidia.com/en-us/data-center/h100: SXM 1,979 / PCIe 1,513 /
# NVL 1,671 bf16 TFLOPS "with sparsity", halved here), NVIDIA H200 datasheet (SXM 1,979 / NVL 1,671
# with sparsity), NVIDIA A100 datasheet (312 bf16/fp16, 19.5 fp32), NVIDIA V100 datasheet (SXM2 125 /
# PCIe 112 fp16 tensor, 15.7 / 14 fp32; no bf16), NVIDIA A10 datasheet (250 with sparsity, 31.2 fp32),
# NVIDIA L4 datasheet (242 with sparsity, 30.3 fp32), AMD Instinct MI250X / MI250 datasheets (383 /
# 362.1 bf16 and fp16, 95.7 / 90.5 fp32 matrix), AMD Instinct MI300X / MI300A datasheets (1,307.4 /
# 980.6 bf16 and fp16 dense, 163.4 / 122.6 fp32 matrix).
# Matched against torch.cuda.get_device_name() in this order (first hit wins: "A100" before "A10").
PEAK_TFLOPS: list[tuple[str, tuple[float | None, float | None, float]]] = [
    ("H200 NVL", (835.5, 835.5, 60.0)),
    ("H200", (989.5, 989.5, 67.0)),
    ("H100 NVL", (835.5, 835.5, 60.0)),
    ("H100 PCIe", (756.5, 756.5, 51.0)),
    ("H100", (989.5, 989.5, 67.0)),  # SXM: "NVIDIA H100 80GB HBM3"
    ("A100", (312.0, 312.0, 19.5)),
    ("V100-PCIE", (None, 112.0, 14.0)),
    ("V100", (None, 125.0, 15.7)),
    ("A10", (125.0, 125.0, 31.2)),
    ("L4", (121.0, 121.0, 30.3)),
    ("MI300X", (1307.4, 1307.4, 163.4)),
    ("MI300A", (980.6, 980.6, 122.6)),
    ("MI250X", (383.0, 383.0, 95.7)),
    ("MI250", (362.1, 362.1, 90.5)),
]
PRECISIONS = ("bf16", "fp16", "fp32")


def step_flops(config, tokens: float, tokens_sq: float, sequences: float, predictions: float) -> float:
    """Model FLOPs of forward + backward for a batch with Σn = tokens, Σn² = tokens_sq, B = sequences
    and Σm = predictions (see the module docstring)."""
    # I: the FFN (intermediate) size, the formula's symbol in the module docstring
    H, I, V, layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers  # noqa: E741
    forward = (
        layers * (8 * H * H + 4 * H * I) * tokens
        + layers * 4 * H * tokens_sq
        + (2 * H * H + 4 * H) * sequences
        + (2 * H * H + 2 * H * V) * predictions
    )
    return 3.0 * forward


def batch_stats(batch: dict) -> tuple[float, float, float, float]:
    """(Σn, Σn², B, Σm) of a collated batch, the arguments of `step_flops`."""
    lengths = batch["attention_mask"].sum(1).double()
    return (
        float(lengths.sum()),
        float((lengths * lengths).sum()),
        float(lengths.numel()),
        float((batch["labels"] != -100).sum()),
    )


def peak_tflops(device_name: str, precision: str) -> float | None:
    """The dense peak of a known accelerator at `precision` (bf16, fp16, fp32), else None."""
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peaks[PRECISIONS.index(precision)]
    return None


def device_name(device) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda" or str(device).startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return "cpu"
