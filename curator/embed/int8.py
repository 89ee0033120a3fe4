"""DINOv2 CLS embeddings in int8 on the CPU through ONNX Runtime.

The fp32 model is turned into an int8 one once per weights file and kept on disk:

1. **Calibrate**: the largest absolute input of every channel of the ``qkv``, ``proj`` and ``fc1``
   layers over frames of the clip shipped with the package.
2. **Smooth** (SmoothQuant, Xiao et al. 2023): DINOv2 has a few channels whose activations are
   hundreds of times larger than the rest, and a per-tensor int8 scale fitted to those rounds the
   others away. Each such input channel is divided by ``s = amax**alpha / wmax**(1 - alpha)`` and the
   layer's weight column multiplied by it: for ``qkv`` and ``fc1`` the division is folded into the
   LayerNorm before them, for ``proj`` into the ``v`` rows of ``qkv`` (attention is linear in
   ``v``). In fp32 the smoothed model gives the same outputs (cosine 1.0 to 1e-6).
3. **Export** the smoothed model's CLS token to ONNX and **quantize** it dynamically (int8 weights
   per output channel, activations per tensor at run time) with ``onnxruntime.quantization``.

Frames go through the session one at a time: the activation scales are computed over the input
tensor, so batching frames together would make a frame's embedding depend on its batch mates.
With one frame per call an embedding is a function of the frame alone, and ONNX Runtime's int8
kernels lose nothing at batch 1 here (measured 9.6 vs 10.0 frames/s at batch 16 vs 1).

Patch tokens (for propagation and click-to-segment) stay on the fp32 PyTorch model: only the global
vector, which indexes and selects frames, runs in int8. Faithfulness and speed are measured by
``curator bench embed`` (see ``docs/experiments.md``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from curator.embed.base import BackboneWeightsError

#: Bumped whenever the recipe below changes, so a cached model built the old way is rebuilt.
RECIPE_VERSION = 1
#: SmoothQuant's migration strength (0: all quantization difficulty stays on the activations).
DEFAULT_ALPHA = 0.7
#: Frames of the bundled clip used to calibrate.
CALIBRATION_FRAMES = 16
CACHE_ENV = "CURATOR_MODEL_CACHE"


class Int8UnavailableError(BackboneWeightsError):
    """ONNX Runtime (or ``onnx``) is not installed, so the int8 embedder cannot run."""


def model_cache_dir() -> Path:
    """Where built int8 models are kept: ``$CURATOR_MODEL_CACHE``, else ``~/.cache/curator/models``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curator" / "models"


def weights_digest(model: Any) -> str:
    """A short SHA-256 of a model's parameters and buffers (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def calibration_images(count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """``count`` RGB frames spread evenly over the clip shipped with the package."""
    import av

    from curator.demo import sample_video

    with av.open(str(sample_video())) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    return [frames[i] for i in picks]


def _linear_input_amax(backbone: Any, images: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per-input-channel absolute maximum of every ``nn.Linear`` of the model over ``images``."""
    import torch

    amax: dict[str, Any] = {}
    hooks = []

    def hook(name: str) -> Any:
        def record(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
            value = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            amax[name] = torch.maximum(amax[name], value) if name in amax else value

        return record

    for name, module in backbone.model.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        for start in range(0, len(images), 8):
            backbone._forward_tokens(
                list(images[start : start + 8]), (backbone.image_size, backbone.image_size)
            )
    finally:
        for handle in hooks:
            handle.remove()
    return amax


def _smoothing(activation_max: Any, weight: Any, alpha: float) -> Any:
    weight_max = weight.abs().amax(0).clamp(min=1e-5)
    return (activation_max.clamp(min=1e-5) ** alpha / weight_max ** (1 - alpha)).clamp(min=1e-5)


def smooth_model(model: Any, amax: dict[str, Any], alpha: float = DEFAULT_ALPHA) -> Any:
    """A copy of a timm ViT with SmoothQuant scales folded in (same fp32 outputs, tamer activations).

    Args:
        model: A timm ``VisionTransformer`` (pre-norm blocks with ``norm1``/``attn.qkv``/``attn.proj``/
            ``norm2``/``mlp.fc1``).
        amax: Per-input-channel absolute maxima by module name (:func:`_linear_input_amax`).
        alpha: Migration strength.

    Returns:
        The smoothed copy; ``model`` is left as it was.
    """
    import torch

    model = copy.deepcopy(model)
    with torch.no_grad():
        for i, block in enumerate(model.blocks):
            for norm, linear, name in (
                (block.norm1, block.attn.qkv, f"blocks.{i}.attn.qkv"),
                (block.norm2, block.mlp.fc1, f"blocks.{i}.mlp.fc1"),
            ):
                scale = _smoothing(amax[name], linear.weight, alpha)
                norm.weight.div_(scale)
                norm.bias.div_(scale)
                linear.weight.mul_(scale)
            proj = block.attn.proj
            scale = _smoothing(amax[f"blocks.{i}.attn.proj"], proj.weight, alpha)
            dim = proj.in_features
            # rows 2*dim: of qkv make v; every head's output is a convex mix of v rows
            block.attn.qkv.weight[2 * dim :].div_(scale[:, None])
            block.attn.qkv.bias[2 * dim :].div_(scale)
            proj.weight.mul_(scale)
    return model


def _cls_module(model: Any) -> Any:
    """``model`` wrapped so that ONNX export sees ``images -> CLS token``."""
    import torch

    class ClsToken(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return self.inner.forward_features(x)[:, 0]

    return ClsToken(model)


def build_int8_model(backbone: Any, path: Path, alpha: float = DEFAULT_ALPHA) -> Path:
    """Calibrate, smooth, export and quantize ``backbone``'s model to an int8 ONNX file at ``path``.

    Written through temporary files in the same folder and renamed into place, so processes
    building the same model at once each leave a whole file and readers never see a partial one.
    """
    import torch

    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise Int8UnavailableError(f"the int8 embedder needs onnxruntime and onnx: {exc}") from exc

    amax = _linear_input_amax(backbone, calibration_images())
    smoothed = smooth_model(backbone.model, amax, alpha).cpu().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    size = backbone.image_size
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as scratch:
        fp32_path = Path(scratch) / "fp32.onnx"
        int8_path = Path(scratch) / "int8.onnx"
        example = torch.zeros(1, 3, size, size)
        # the tracer warns about every Python-side shape check in timm; the exported graph is fixed-size
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _cls_module(smoothed),
                (example,),
                str(fp32_path),
                input_names=["images"],
                output_names=["cls"],
                dynamic_axes={"images": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        # the quantizer logs advice on the root logger that does not apply to a dynamic quantization
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(previous)
        os.replace(int8_path, path)
    return path


def int8_model_path(backbone: Any, alpha: float = DEFAULT_ALPHA) -> Path:
    """The cache path of ``backbone``'s int8 model: named by model, weights, input size and versions."""
    import onnxruntime
    import torch

    versions = f"r{RECIPE_VERSION}-ort{onnxruntime.__version__}-torch{torch.__version__.split('+')[0]}"
    name = f"{backbone.model_name}-{weights_digest(backbone.model)}-{backbone.image_size}px-a{alpha}-{versions}.onnx"
    return model_cache_dir() / name


class Int8Session:
    """An ONNX Runtime session over the int8 CLS model of a backbone, built on first use if missing.

    Args:
        backbone: A :class:`~curator.embed.dinov2.TimmViTBackbone` (its fp32 model is calibrated).
        threads: Frames run at once, one thread each (default: ``torch.get_num_threads()``, the same
            thread count as the fp32 path).
        alpha: SmoothQuant strength.
    """

    def __init__(self, backbone: Any, threads: int | None = None, alpha: float = DEFAULT_ALPHA) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise Int8UnavailableError(f"the int8 embedder needs onnxruntime: {exc}") from exc
        import torch

        self.path = int8_model_path(backbone, alpha)
        #: Whether this process built the model (else it was read from the cache).
        self.built = False
        if not self.path.is_file():
            build_int8_model(backbone, self.path, alpha)
            self.built = True
        options = ort.SessionOptions()
        # one thread a call, and as many calls at once as threads: a frame on one core each beat
        # one frame at a time on every core (1.2-1.47x on two cores: a batch-1 ViT-S leaves
        # intra-op threads waiting on each other), and a frame's output stays the same
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle threads sleep instead of spinning: on a busy CPU, and beside ingest's decoding thread,
        # spinning took the cores from the work (17.2 vs 9.5 frames/s measured on two shared cores)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        #: Frames run at once, each on one thread.
        self.workers = max(1, threads or torch.get_num_threads())
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def cls_tokens(self, batches: Iterator[np.ndarray]) -> np.ndarray:
        """Run every ``(1, 3, H, W)`` float32 input; returns ``(n, dim)`` CLS tokens (not normalised)."""
        def run(batch: np.ndarray) -> np.ndarray:
            return self.session.run(None, {"images": batch})[0]  # releases the GIL while it runs

        if self.workers == 1:
            outputs = [run(batch) for batch in batches]
        else:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="curator-int8") as pool:
                outputs = list(pool.map(run, batches))
        return np.concatenate(outputs).astype(np.float32)
