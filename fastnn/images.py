"""Turn a picture of one handwritten digit into an MNIST-like input row.

MNIST's own preprocessing (LeCun et al.): each digit was size-normalised to fit
a 20x20 box keeping its aspect ratio (anti-aliased, so grey levels appear),
then placed in a 28x28 image so that its centre of mass sits at the centre.
Digits are white ink (1.0) on a black background (0.0). :func:`load_digit_image`
repeats those steps on an arbitrary picture:

1. open with Pillow, flatten transparency onto white, convert to grayscale;
2. invert if asked, or -- ``invert="auto"`` -- when the border is bright (a dark
   digit on light paper);
3. remove the background level (the border's median) and stretch the ink to
   [0, 1], so grey paper and faint pencil look like MNIST;
4. crop to the digit's bounding box, scale the longer side to 20 pixels,
   centre by centre of mass in 28x28.

Pillow is imported on first use (``pip install "fastnn[plots]"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["load_digit_image"]

#: Side of the box the digit is scaled into, and of the final image (MNIST).
BOX = 20
SIZE = 28
#: After background removal, pixels above this count as ink for the bounding box.
INK_THRESHOLD = 0.2
#: A border brighter than this (0..1) means dark ink on light paper.
BRIGHT_BORDER = 0.5


def _pil():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError(
            "reading images needs Pillow, which is not installed: pip install "
            '"fastnn[plots]"'
        ) from err
    return Image, UnidentifiedImageError


def _read_gray(path: Path) -> np.ndarray:
    """The image as float64 (h, w) in [0, 1], transparency flattened onto white."""
    Image, UnidentifiedImageError = _pil()
    if not path.exists():
        raise FileNotFoundError(f"image: {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"image: {str(path)!r} is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            gray = img.convert("L")
    except Image.DecompressionBombError as err:  # before decoding gigapixels
        raise ValueError(f"image: {str(path)!r} is too large: {err}") from err
    except UnidentifiedImageError as err:
        raise ValueError(
            f"image: {str(path)!r} is not an image file Pillow can read "
            "(expected PNG, JPEG, BMP, GIF, ...)"
        ) from err
    except (OSError, SyntaxError) as err:  # truncated or damaged image data
        raise ValueError(f"image: {str(path)!r} could not be decoded: {err}") from err
    return np.asarray(gray, dtype=np.float64) / 255.0


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Anti-aliased resize of a float image (Pillow's mode "F", Lanczos)."""
    Image, _ = _pil()
    img = Image.fromarray(a.astype(np.float32))  # mode "F"
    out = img.resize((width, height), Image.Resampling.LANCZOS)
    # Lanczos rings slightly outside [0, 1] around sharp edges.
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def _center_by_mass(patch: np.ndarray) -> np.ndarray:
    """Place ``patch`` in a SIZE x SIZE canvas with its centre of mass centred."""
    h, w = patch.shape
    total = patch.sum()
    rows, cols = np.indices(patch.shape)
    cy = (rows * patch).sum() / total
    cx = (cols * patch).sum() / total
    # MNIST's centres of mass sit at pixel index (14, 14) (measured on the
    # training set: mean 14.00, sd 0.28). Clamp so the whole patch stays inside
    # (a lopsided digit may end slightly off-centre).
    top = int(np.clip(round(SIZE / 2 - cy), 0, SIZE - h))
    left = int(np.clip(round(SIZE / 2 - cx), 0, SIZE - w))
    canvas = np.zeros((SIZE, SIZE))
    canvas[top : top + h, left : left + w] = patch
    return canvas


def load_digit_image(
    path: str | os.PathLike, invert: bool | str = "auto"
) -> np.ndarray:
    """Read one digit image and preprocess it like MNIST: float32 (784,) in [0, 1].

    Parameters
    ----------
    path : str or path-like
        Any image Pillow reads (PNG, JPEG, BMP, ...), one digit on a plain
        background, any size.
    invert : {"auto", True, False}
        MNIST digits are white on black. ``True`` inverts (for dark ink on
        light paper), ``False`` keeps the grey levels, ``"auto"`` inverts when
        the image's border is brighter than mid-grey.

    Returns
    -------
    np.ndarray
        float32 (784,): the 28x28 image row by row, ready for
        ``model.predict(x[None])``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a readable image, ``invert`` is invalid, or the image
        is blank (no digit stands out from the background).
    """
    if invert != "auto" and not isinstance(invert, (bool, np.bool_)):
        raise ValueError(f"invert: expected 'auto', True or False; received {invert!r}")
    path = Path(os.fspath(path))
    a = _read_gray(path)
    if invert == "auto":
        invert = bool(np.median(_border(a)) > BRIGHT_BORDER)
    if invert:
        a = 1.0 - a
    background = float(np.median(_border(a)))
    a = a - background
    peak = float(a.max())
    if peak < 0.1:
        raise ValueError(
            f"image: {str(path)!r} looks blank: no digit stands out from the "
            f"background (ink contrast {peak:.2f}). Expected one "
            + (
                "dark digit on a light background"
                if invert
                else "light digit on a dark background"
            )
            + "; try --invert/--no-invert (invert=True/False)."
        )
    a = np.clip(a / peak, 0.0, 1.0)
    rows = np.flatnonzero((a > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((a > INK_THRESHOLD).any(axis=0))
    a = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = a.shape
    scale = BOX / max(h, w)
    new_h = max(1, round(h * scale))
    new_w = max(1, round(w * scale))
    patch = _resize(a, new_h, new_w)
    if patch.max() <= 0:  # pragma: no cover - a non-blank crop keeps some ink
        raise ValueError(f"image: {str(path)!r}: the digit vanished when resized")
    # Thin pen strokes get lighter when a large picture shrinks to 20 pixels;
    # MNIST strokes peak at full white.
    patch /= patch.max()
    return _center_by_mass(patch).astype(np.float32).reshape(SIZE * SIZE)
