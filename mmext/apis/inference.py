"""Build a segmentor from an mmext config and run it on images: the Python entry point for people.

mmseg's :func:`mmseg.apis.init_model` / :func:`mmseg.apis.inference_model` do the building, the test pipeline
and the forward pass. This module adds what they lack for mmext's configs:

* SyncBN (the configs' norm) is reverted to BatchNorm, so the model runs on CPU and in one process;
* checkpoints are read with ``weights_only=True`` through :mod:`mmext.checkpoint` (mmengine's loader
  fails on torch >= 2.6), either a whole segmentor (our training checkpoints) or a backbone only (official, timm
  or converted ImageNet weights), and a checkpoint for another architecture is refused with the keys that differ;
* without a checkpoint nothing is downloaded: the backbone's ``Pretrained`` init is dropped with a logged note;
* images are read and normalised to 3-channel BGR ``uint8`` here, so grayscale and RGBA inputs work and a missing
  or corrupt file is named in the error.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmseg.apis import inference_model, init_model
from mmseg.models import BaseSegmentor

from mmext.checkpoint import (
    check_finite_state_dict,
    check_model_state_dict,
    from_weights_only,
    read_checkpoint,
    unwrap_state_dict,
)
from mmext.models.backbones.inceptionnext_weights import load_backbone_checkpoint

ImageInput = str | Path | np.ndarray

# label_map_from_logits interpolates at most this many classes per pixel where few can win (measured: 2-3).
_MAX_CONTENDERS = 8
# Tensors under these prefixes mark a whole-segmentor checkpoint (else it is loaded as backbone weights).
_SEGMENTOR_PREFIXES = ('decode_head.', 'auxiliary_head.', 'neck.')
# mmseg's ADE20K test pipeline; used when a config has no ``test_pipeline`` (a model-only config).
DEFAULT_TEST_PIPELINE = [
    dict(type='LoadImageFromNDArray'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='PackSegInputs'),
]


def load_image(image: ImageInput) -> np.ndarray:
    """Read an image file or check an array, returning an ``(H, W, 3)`` BGR ``uint8`` array.

    Files are decoded like mmseg's ``LoadImageFromFile`` (``cv2.IMREAD_COLOR``: EXIF orientation applied, gray
    expanded to 3 channels, alpha dropped, 16-bit scaled to 8). Arrays must be ``uint8`` and are taken as BGR
    (``cv2.imread``'s order): ``(H, W)`` and ``(H, W, 1)`` grayscale are expanded, ``(H, W, 4)`` BGRA loses its
    alpha channel.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is empty or not a decodable image, or the array has an unsupported shape / dtype.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if path.is_dir():
            raise IsADirectoryError(f'image {path} is a directory, not an image file')
        if not path.is_file():
            raise FileNotFoundError(f'image not found: {path}')
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if decoded is None:
            raise ValueError(f'cannot decode image {path} ({data.size} bytes): not an image file, or corrupt')
        return decoded
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a path or a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'image array must be uint8 (0..255, BGR), got dtype {image.dtype}')
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[..., :3])
    raise ValueError(f'image array must be (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, got shape '
                     f'{image.shape}')


def _load_config(config: str | Path | Config) -> Config:
    if isinstance(config, (str, Path)):
        if not Path(config).is_file():
            raise FileNotFoundError(f'config not found: {config}')
        return Config.fromfile(str(config))
    if isinstance(config, Config):
        return copy.deepcopy(config)  # init_model edits the config it is given
    raise TypeError(f'config must be a file path or an mmengine Config, got {type(config).__name__}')


def _drop_pretrained(cfg: Config) -> None:
    """Remove every ``Pretrained`` init in the model config, logging what would have been downloaded/read."""
    for name in ('backbone', 'neck', 'decode_head', 'auxiliary_head'):
        module_cfg = cfg.model.get(name)
        if not isinstance(module_cfg, dict):
            continue
        init_cfg = module_cfg.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            print_log(f'No checkpoint given: model.{name} is randomly initialised (its init_cfg Pretrained '
                      f'{init_cfg.get("checkpoint")!r} is not loaded).', logger='current')
            module_cfg.init_cfg = None
    if cfg.model.get('pretrained'):
        print_log(f'No checkpoint given: model.pretrained={cfg.model.pretrained!r} is not loaded.',
                  logger='current')
    cfg.model.pretrained = None


def init_segmentor(config: str | Path | Config, checkpoint: str | Path | None = None, device: str = 'cpu',
                   cfg_options: dict | None = None, checkpoint_key: str | None = None,
                   allow_non_finite: bool = False) -> BaseSegmentor:
    """Build a segmentor for inference from an mmext (or any mmseg) config.

    Args:
        config: Config file (e.g. ``configs/upernet_inceptionnext_t_ade20k.py``) or a :class:`Config`, which is
            not modified.
        checkpoint: A segmentor checkpoint (``state_dict`` keys ``backbone.*``, ``decode_head.*``, ...: our
            training checkpoints), which must fit the model exactly, or a backbone-only checkpoint (official,
            timm, converted), loaded strictly into ``model.backbone`` while the heads stay random. ``None`` gives
            a randomly initialised model and downloads nothing.
        device: Torch device, e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: Overrides merged into the config (dotted keys, as in mmengine's ``merge_from_dict``).
        checkpoint_key: The checkpoint's top-level entry holding the weights, e.g. ``'state_dict_ema'``,
            ``'model_ema'`` or ``'module'``; ``None`` tries ``state_dict``, ``model``, ``module``, then the file.
        allow_non_finite: Load tensors holding NaN/Inf (refused by default, naming the tensors).

    Returns:
        The segmentor in eval mode on ``device``, SyncBN reverted to BatchNorm, with ``cfg`` and ``dataset_meta``
        set (classes and palette from the checkpoint's meta, else ADE20K's when it has 150 classes).
    """
    cfg = _load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _drop_pretrained(cfg)
    # init_model drops the backbone's init_cfg itself, never calls init_weights() and moves the model to device;
    # its own checkpoint loading goes through mmengine's torch.load, which fails under weights_only.
    model = init_model(cfg, checkpoint=None, device='cpu')
    model = revert_sync_batchnorm(model)
    meta: dict = {}
    if checkpoint is not None:
        meta = _load_weights(model, checkpoint, checkpoint_key, allow_non_finite)
    model.dataset_meta = meta.get('dataset_meta') or _default_dataset_meta(model)
    model.cfg = cfg
    return model.to(device).eval()


def _load_weights(model: BaseSegmentor, checkpoint: str | Path, key: str | None = None,
                  allow_non_finite: bool = False) -> dict:
    """Load a segmentor or a backbone-only checkpoint into ``model``; return its decoded ``meta`` (or ``{}``)."""
    filename = str(checkpoint)
    raw = read_checkpoint(filename)  # weights_only / safetensors; names the file on any failure
    state, _ = unwrap_state_dict(raw, filename, key=key)
    if not any(k.startswith(_SEGMENTOR_PREFIXES) for k in state):
        print_log(f'{filename} holds no decode_head.* / neck.* / auxiliary_head.* tensors: loading it as '
                  'backbone weights; the heads stay randomly initialised.', logger='current')
        load_backbone_checkpoint(model.backbone, filename, key=key, allow_non_finite=allow_non_finite)
        return {}
    if not allow_non_finite:
        check_finite_state_dict(state, filename)
    check_model_state_dict(model, state, filename)
    model.load_state_dict(state, strict=True)
    print_log(f'Loaded {len(state)} tensors of {type(model).__name__} from {filename}', logger='current')
    meta = raw.get('meta') if isinstance(raw, Mapping) else None
    return from_weights_only(meta) if isinstance(meta, Mapping) else {}


def _default_dataset_meta(model: BaseSegmentor) -> dict:
    from mmseg.datasets import ADE20KDataset
    num_classes = model.decode_head.num_classes
    if num_classes == len(ADE20KDataset.METAINFO['classes']):
        return dict(classes=ADE20KDataset.METAINFO['classes'], palette=ADE20KDataset.METAINFO['palette'])
    rng = np.random.default_rng(0)
    return dict(classes=tuple(f'class {i}' for i in range(num_classes)),
                palette=rng.integers(0, 256, (num_classes, 3)).tolist())


def _ensure_test_pipeline(model: BaseSegmentor) -> None:
    if not model.cfg.get('test_pipeline'):
        print_log(f'The config has no test_pipeline; using {DEFAULT_TEST_PIPELINE}.', logger='current')
        model.cfg.test_pipeline = copy.deepcopy(DEFAULT_TEST_PIPELINE)


def inference_segmentor(model: BaseSegmentor, images: ImageInput | Sequence[ImageInput],
                        return_logits: bool = False, max_tile_bytes: int = 256 * 2**20
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray] | list:
    """Segment one image or a list of images with the config's test pipeline.

    The label map is computed with bounded memory: the network's logits (at the test pipeline's scale, e.g. 512
    px high) are resized to the image's size and arg-maxed without materialising ``num_classes x H x W`` floats
    (:func:`label_map_from_logits`: only pixels near class boundaries are interpolated), so a 10000x10000 image
    no longer needs ``num_classes x 10^8`` floats. The result equals mmseg's (bilinear resize of all logits, then
    arg-max) up to float-rounding ties.

    Args:
        model: A segmentor from :func:`init_segmentor`.
        images: An image path or array, or a list of them (see :func:`load_image` for what is accepted). Images
            run one at a time, so a list may mix sizes.
        return_logits: Also return the logits. They are full size, ``num_classes x H x W`` float32, and cost
            what that costs (mmseg's own path is used).
        max_tile_bytes: Working memory of one step of :func:`label_map_from_logits` (below it: mmseg's path).

    Returns:
        Per image, the ``(H, W)`` ``int64`` label map at the image's own size (class ids ``0..num_classes-1``),
        or ``(label_map, logits)`` with ``(num_classes, H, W)`` ``float32`` logits when ``return_logits``. A list
        of those when ``images`` is a list or tuple.
    """
    is_batch = isinstance(images, (list, tuple))
    _ensure_test_pipeline(model)
    results = []
    for image in (images if is_batch else [images]):
        if return_logits:
            sample = inference_model(model, load_image(image))
            label_map = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64)
            results.append((label_map, sample.seg_logits.data.float().cpu().numpy()))
        else:
            results.append(_bounded_label_map(model, load_image(image), max_tile_bytes))
    return results if is_batch else results[0]


@torch.no_grad()
def _bounded_label_map(model: BaseSegmentor, image: np.ndarray, max_tile_bytes: int) -> np.ndarray:
    """mmseg's ``inference_model`` + ``postprocess_result`` for one image, with the bounded-memory resize + arg-max."""
    from mmengine.dataset import Compose

    pipeline_cfg = copy.deepcopy(model.cfg.test_pipeline)
    if pipeline_cfg[0].get('type') in ('LoadImageFromFile', 'CheckedLoadImageFromFile'):
        pipeline_cfg[0] = dict(type='LoadImageFromNDArray')
    pipeline_cfg = [t for t in pipeline_cfg if 'LoadAnnotations' not in str(t.get('type'))]
    data = Compose(pipeline_cfg)(dict(img=image))
    batch = model.data_preprocessor(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
    meta = batch['data_samples'][0].metainfo
    logits = model.inference(batch['inputs'], [meta])[0]
    _, h, w = logits.shape
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    logits = logits[:, top:h - bottom, left:w - right]
    if meta.get('flip'):
        logits = logits.flip(dims=(2,) if meta.get('flip_direction') == 'horizontal' else (1,))
    if logits.shape[0] == 1:  # binary head: mmseg thresholds the sigmoid instead of an arg-max
        full = torch.nn.functional.interpolate(logits[None], size=meta['ori_shape'], mode='bilinear',
                                               align_corners=model.align_corners)[0]
        return (full.sigmoid() > model.decode_head.threshold)[0].cpu().numpy().astype(np.int64)
    return label_map_from_logits(logits, meta['ori_shape'][:2], model.align_corners, max_tile_bytes)


def _source_coords(in_size: int, out_size: int, align_corners: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output index: the two source indices and their weights, as torch's ``upsample_bilinear2d`` sets them."""
    dst = torch.arange(out_size, dtype=torch.float32)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.)
    else:
        src = ((dst + 0.5) * torch.tensor(in_size / out_size, dtype=torch.float32) - 0.5).clamp_(min=0)
    i0 = src.long().clamp_(max=in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    w1 = src - i0.float()
    return i0, i1, 1 - w1, w1


def label_map_from_logits(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = False,
                          max_tile_bytes: int = 256 * 2**20) -> np.ndarray:
    """``argmax(bilinear_resize(logits, size))`` over classes, without the full-size logits.

    Args:
        logits: ``(C, h, w)`` logits.
        size: Output ``(H, W)``.
        align_corners: As in :func:`torch.nn.functional.interpolate`.
        max_tile_bytes: Bound for the working memory of one step. When ``C x H x W`` float32 fit in it, this is
            exactly ``F.interpolate`` + ``argmax``.

    A bilinear value lies between the smallest and the largest of its four source pixels, so in a source cell
    where one class's smallest corner beats every other class's largest one (by a margin far above float
    rounding), every output pixel of that cell takes that class without being interpolated. Only pixels of the
    other cells (class boundaries) are interpolated, for the few classes that can win there (all classes where
    more than eight can), in chunks of at most ``max_tile_bytes``.
    Memory: a few copies of ``logits`` plus the ``(H, W)`` label map, whatever the output size. Where two
    classes' interpolated logits differ by less than float rounding (~1e-5) the winner may differ from a full
    resize, as between any two bilinear implementations.
    """
    c, in_h, in_w = logits.shape
    out_h, out_w = size
    logits = logits.detach().float().cpu()
    if c * out_h * out_w * 4 <= max_tile_bytes:  # fits at once: exactly mmseg's computation
        full = torch.nn.functional.interpolate(logits[None], size=(out_h, out_w), mode='bilinear',
                                               align_corners=align_corners)[0]
        return full.argmax(0).numpy().astype(np.int64)
    y0, y1, hy0, hy1 = _source_coords(in_h, out_h, align_corners)
    x0, x1, wx0, wx1 = _source_coords(in_w, out_w, align_corners)
    # Per source cell (y, x) (corners y|y+1, x|x+1, edges clamped): the classes whose largest corner reaches the
    # best smallest corner. The winner of every pixel in the cell is one of them; with one, it is the label.
    padded = torch.cat([logits, logits[:, -1:]], 1)
    padded = torch.cat([padded, padded[:, :, -1:]], 2)
    k = min(c, _MAX_CONTENDERS)
    contenders = torch.empty(k, in_h, in_w, dtype=torch.int64)  # ascending class ids, padded with the last
    count = torch.empty(in_h, in_w, dtype=torch.int64)
    order = -torch.arange(c, dtype=torch.float32)[:, None, None]
    rows = max(1, max_tile_bytes // (4 * 6 * c * (in_w + 1)))
    for start in range(0, in_h, rows):
        block = padded[:, start:min(in_h, start + rows) + 1]
        corners = (block[:, :-1, :-1], block[:, :-1, 1:], block[:, 1:, :-1], block[:, 1:, 1:])
        low = torch.minimum(torch.minimum(corners[0], corners[1]), torch.minimum(corners[2], corners[3]))
        high = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
        best = low.amax(0)
        reach = high >= (best - 1e-3 * (1 + best.abs()))[None]  # margin far above float rounding
        count[start:start + rows] = reach.sum(0)
        ids = torch.where(reach, order, float('-inf')).topk(k, 0).indices  # smallest ids first
        n = count[start:start + rows].clamp(max=k)
        last = ids.gather(0, (n - 1)[None])
        contenders[:, start:start + rows] = torch.where(torch.arange(k)[:, None, None] < n[None], ids, last)
    flat = logits.permute(1, 2, 0).contiguous().view(-1)  # pixel-major, so a pixel's classes gather fast
    label = np.empty((out_h, out_w), dtype=np.int64)
    band = max(1, max_tile_bytes // (8 * 4 * out_w))  # output rows per step: a few int64 maps of the band
    for band_start in range(0, out_h, band):
        band_rows = torch.arange(band_start, min(out_h, band_start + band))
        cell = y0[band_rows, None] * in_w + x0[None, :]  # source cell of each output pixel of the band
        band_label = contenders[0].view(-1)[cell.view(-1)]
        cell_count = count.view(-1)[cell]
        for few in (True, False):
            rows_at, cols_at = torch.nonzero((cell_count > 1) & (cell_count <= k) if few else cell_count > k,
                                             as_tuple=True)
            width = k if few else c
            chunk = max(1, max_tile_bytes // (4 * width * 12))
            for start in range(0, rows_at.numel(), chunk):
                i, q = rows_at[start:start + chunk], cols_at[start:start + chunk]
                r = band_rows[i]
                if few:
                    ids = contenders.view(k, -1)[:, y0[r] * in_w + x0[q]].T  # (P, k)
                else:
                    ids = torch.arange(c).expand(r.numel(), c)
                top, bottom, left, right = y0[r, None] * in_w, y1[r, None] * in_w, x0[q, None], x1[q, None]
                wl, wr = wx0[q, None], wx1[q, None]
                upper = flat[(top + left) * c + ids] * wl + flat[(top + right) * c + ids] * wr
                lower = flat[(bottom + left) * c + ids] * wl + flat[(bottom + right) * c + ids] * wr
                mixed = upper * hy0[r, None] + lower * hy1[r, None]
                band_label[i * out_w + q] = ids.gather(1, mixed.argmax(1, keepdim=True))[:, 0]
        label[band_start:band_start + band] = band_label.view(-1, out_w).numpy()
    return label


@torch.no_grad()
def whole_image_logits(model: BaseSegmentor, image: np.ndarray) -> torch.Tensor:
    """Logits of one BGR ``uint8`` image at its own size, without resizing: mmseg's whole-image inference.

    The reference the ONNX export is checked against: ``model.data_preprocessor`` (BGR->RGB, normalisation),
    then ``model.encode_decode`` (features, decode head, bilinear resize to the input size).

    Returns:
        ``(1, num_classes, H, W)`` float32 logits.
    """
    image = load_image(image)
    device = next(model.parameters()).device
    inputs = model.data_preprocessor(dict(inputs=[torch.from_numpy(image).permute(2, 0, 1).to(device)]),
                                     False)['inputs']
    h, w = image.shape[:2]
    metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])]
    return model.encode_decode(inputs, metas).float()
