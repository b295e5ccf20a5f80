"""``fastnn export``: write a saved model as an ONNX graph (via
:meth:`fastnn.Sequential.to_onnx`)."""

from __future__ import annotations

import argparse

import fastnn.cli.common as common

HELP = "export a saved model as an ONNX graph"
DESCRIPTION = (
    "Write a model saved by 'fastnn train' (or Sequential.save) "
    "as an ONNX file computing its predictions (Gemm and activation "
    "nodes, opset 17, dynamic batch, the model's dtype), checked by "
    'onnx.checker. Needs: pip install "fastnn[onnx]".'
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """export's arguments."""
    parser.add_argument("model", metavar="MODEL", help="a .npz model file")
    parser.add_argument("output", metavar="OUTPUT", help="the .onnx file to write")


def run(args: argparse.Namespace) -> int:
    """Write the ONNX file; returns the exit status."""
    common.check_file_option("OUTPUT", args.output)
    model = common.load_model(args.model, "numpy")
    print(f"wrote {model.to_onnx(args.output)}")
    return 0
