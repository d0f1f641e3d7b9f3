"""How mmext reads image and label files: one set of rules for the loading transforms, the preflight scan, the
demos and the tools, so that what preflight accepts is exactly what training reads.

Images decode through mmcv's ``imfrombytes`` with the loader's ``color_type`` and backend (``'color'`` applies
the EXIF orientation); labels with ``'unchanged'`` (no EXIF orientation, palette indices kept), as mmseg's
``LoadAnnotations`` does. On top of what the decoders notice, a file is refused when it is truncated (a JPEG
without its end marker, a PNG without its ``IEND`` chunk: OpenCV fills a truncated JPEG with grey silently),
larger than :data:`MAX_PIXELS`, or a label stored as JPEG (lossy: class ids change along every edge).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import mmcv
import numpy as np
from PIL import Image

#: File name suffixes read as images by the demos and tools (compared lower-case).
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Largest image (height x width) decoded: Pillow's own refusal threshold (2 x ``Image.MAX_IMAGE_PIXELS``).
MAX_PIXELS = 178_956_970
#: ``color_type`` values of ``LoadImageFromFile`` that apply the EXIF orientation.
ORIENTED_FLAGS = ('color', 'grayscale')

_JPEG, _PNG = b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n'
_EXIF_ORIENTATION = 0x0112
# What EXIF orientations 2..8 do to the stored pixels, for messages.
_ORIENTATION_NAMES = {2: 'mirrored', 3: 'rotated 180 degrees', 4: 'flipped vertically',
                      5: 'transposed', 6: 'rotated 90 degrees clockwise', 7: 'transversed',
                      8: 'rotated 90 degrees counter-clockwise'}


class BadSampleError(ValueError):
    """A dataset sample (image or annotation file) that cannot be used; the message names the file."""


def read_bytes(path: str | os.PathLike, backend_args: dict | None = None, what: str = 'file') -> bytes:
    """The file's bytes (through mmengine's file backends); a missing, folder or empty file raises naming it as
    ``what`` (``'image'``, ``'annotation'``)."""
    from mmengine import fileio  # local storage, or the backend named by ``backend_args``

    path = str(path)
    if backend_args is None and '://' not in path and not os.path.isfile(path):
        raise BadSampleError(f'{what} {path}: is a directory, not a file' if os.path.isdir(path)
                             else f'{what} {path}: missing')
    try:
        content = fileio.get(path, backend_args=backend_args)
    except Exception as err:
        raise BadSampleError(f'{what} {path}: cannot be read ({type(err).__name__}: {err})') from err
    if not content:
        raise BadSampleError(f'{what} {path}: empty file')
    return content


def _check_container(content: bytes, path: str, what: str) -> None:
    """Refuse a truncated JPEG or PNG and an image too large to decode, before decoding it."""
    if content.startswith(_JPEG) and b'\xff\xd9' not in content[-1024:]:
        raise BadSampleError(f'{what} {path}: truncated JPEG (no end-of-image marker; {len(content)} bytes): '
                             're-copy or re-export the file')
    if content.startswith(_PNG) and b'IEND' not in content[-32:]:
        raise BadSampleError(f'{what} {path}: truncated PNG (no IEND chunk; {len(content)} bytes): re-copy or '
                             're-export the file')
    width, height = image_size(content, path, what) or (0, 0)
    if width * height > MAX_PIXELS:
        raise BadSampleError(f'{what} {path}: {width}x{height} (w x h) is {width * height / 1e6:.0f} M pixels, '
                             f'above the {MAX_PIXELS / 1e6:.0f} M that mmext decodes: downscale the file')


def image_size(content: bytes, path: str, what: str = 'image') -> tuple[int, int] | None:
    """``(width, height)`` of the stored pixels from the file header (nothing decoded); ``None`` where Pillow
    cannot parse the header (the decoder then has the last word)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(content)) as img:
                return img.size
        except Image.DecompressionBombError as err:  # Pillow refuses to open it at all
            raise BadSampleError(f'{what} {path}: too large to decode ({err}): downscale the file') from err
        except Exception:  # noqa: BLE001
            return None


def exif_orientation(content: bytes) -> int:
    """The EXIF orientation tag (1..8) of an image file; 1 when it has none."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            with Image.open(io.BytesIO(content)) as img:
                return int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # noqa: BLE001  (no readable EXIF block: the decoders apply nothing either)
            return 1


def orientation_name(orientation: int) -> str:
    return _ORIENTATION_NAMES.get(orientation, f'orientation {orientation}')


def decode_image(content: bytes, path: str | os.PathLike, color_type: str = 'color',
                 backend: str = 'cv2') -> np.ndarray:
    """Decode an image file's bytes as ``LoadImageFromFile(color_type, imdecode_backend=backend)`` does.

    Raises :class:`BadSampleError` naming ``path`` for a corrupt, truncated or oversized file.
    """
    path = str(path)
    _check_container(content, path, 'image')
    try:
        img = mmcv.imfrombytes(content, flag=color_type, backend=backend)
    except Exception as err:
        raise BadSampleError(f'image {path}: cannot be decoded ({type(err).__name__}: {err})') from err
    if img is None or img.size == 0:
        raise BadSampleError(f'image {path}: cannot be decoded (not an image file, or corrupt)')
    return img


def decode_label(content: bytes, path: str | os.PathLike, backend: str = 'pillow') -> np.ndarray:
    """Decode a label map's bytes as mmseg's ``LoadAnnotations`` does (``'unchanged'``: no EXIF orientation,
    palette indices kept) into an ``(H, W)`` array of the stored values.

    Raises :class:`BadSampleError` naming ``path`` for JPEG data (lossy), a corrupt or truncated file or a map
    with several channels.
    """
    path = str(path)
    if content.startswith(_JPEG):
        raise BadSampleError(f'annotation {path}: holds JPEG data, whose lossy compression changes class ids '
                             'along every edge: export it again as PNG')
    _check_container(content, path, 'annotation')
    try:
        label = mmcv.imfrombytes(content, flag='unchanged', backend=backend)
    except Exception as err:
        raise BadSampleError(f'annotation {path}: cannot be decoded ({type(err).__name__}: {err})') from err
    if label is None or label.size == 0:
        raise BadSampleError(f'annotation {path}: cannot be decoded (not an image file, or corrupt)')
    if label.ndim == 3 and label.shape[2] == 1:
        label = label[..., 0]
    if label.ndim != 2:
        raise BadSampleError(f'annotation {path}: shape {label.shape}; a label map has one channel of class indices '
                             '(grayscale or palette PNG)')
    return label


def highest_label(num_classes: int | None, reduce_zero_label: bool) -> int:
    """The largest class value a raw label map may hold: ``num_classes - 1``, or ``num_classes`` when
    ``reduce_zero_label`` shifts 1..N down to 0..N-1 (0 then means unlabeled); 255 without ``num_classes``."""
    if num_classes is None:
        return 255
    return num_classes if reduce_zero_label else num_classes - 1


def check_label_values(label: np.ndarray, path: str | os.PathLike, num_classes: int | None,
                       reduce_zero_label: bool = False, ignore_index: int = 255) -> None:
    """Raise :class:`BadSampleError` naming ``path`` and the values when a raw label holds a value above
    :func:`highest_label` other than ``ignore_index``."""
    highest = highest_label(num_classes, reduce_zero_label)
    if label.dtype == np.uint8 and highest >= 255:
        return
    bad = (label > highest) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad]).tolist()
        shown = ', '.join(str(v) for v in values[:5]) + (', ...' if len(values) > 5 else '')
        raise BadSampleError(f'annotation {path}: class value(s) {shown} in {int(bad.sum())} pixel(s); allowed are '
                             f'0..{highest} and {ignore_index} (ignore)'
                             + (' with reduce_zero_label' if reduce_zero_label else ''))


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """ADE20K's remap: 0 (unlabeled) becomes 255 (ignore), class ``v`` becomes ``v - 1``, 255 stays 255.

    Returns a new ``uint8`` array (values above 255 must have been refused by :func:`check_label_values`).
    """
    reduced = label.astype(np.uint8) - np.uint8(1)  # 0 wraps to 255
    reduced[reduced == 254] = 255  # a raw 255 stays "ignore"
    return reduced


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the image files (by :data:`IMAGE_SUFFIXES`) directly inside the
    folder, sorted: the inputs of the demos and of every tool that takes a folder of images."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f'image or folder not found: {path}')
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f'no image files ({", ".join(IMAGE_SUFFIXES)}) in folder {path}')
    return images


_reduce_zero_label = reduce_zero_label  # load_annotation's argument of that name hides the function there


def load_annotation(path: str | Path, reduce_zero_label: bool = False) -> np.ndarray:
    """Read a label-map PNG as an ``(H, W)`` integer array, as mmseg's ``LoadAnnotations`` does.

    ``reduce_zero_label`` (ADE20K) maps label 0 (unlabeled) to 255 and every other label ``l`` to ``l - 1``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'annotation not found: {path}')
    label = decode_label(read_bytes(path, what='annotation'), path)
    return (_reduce_zero_label(label) if reduce_zero_label else label).astype(np.int64)


def reduce_zero_label_of(cfg) -> bool:
    """Whether the config's test pipeline (``LoadAnnotations``) or test dataset uses ``reduce_zero_label``."""
    for step in cfg.get('test_pipeline') or []:
        if step.get('type') == 'LoadAnnotations':
            return bool(step.get('reduce_zero_label', False))
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    return str(dataset.get('type', '')).endswith('ADE20KDataset') or bool(dataset.get('reduce_zero_label', False))

