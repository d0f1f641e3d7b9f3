"""Build a segmentor from an mmext config and run it on images: the Python entry point for people.

mmseg's :func:`mmseg.apis.init_model` / :func:`mmseg.apis.inference_model` do the building, the test pipeline
and the forward pass. This module adds what they lack for mmext's configs:

* SyncBN (the configs' norm) is reverted to BatchNorm, so the model runs on CPU and in one process;
* checkpoints are read with ``weights_only=True`` through :mod:`mmext.checkpoint` (mmengine's loader
  fails on torch >= 2.6), either a whole segmentor (our training checkpoints) or a backbone only (official, timm
  or converted ImageNet weights), and a checkpoint for another architecture is refused with the keys that differ;
* without a checkpoint nothing is downloaded: the backbone's ``Pretrained`` init is dropped with a logged note
  (:func:`mmext.apis.builder.build_segmentor`, the one builder of models from configs);
* a precision (fp32, bf16/fp16 autocast), the deploy form, channels_last and ``torch.compile`` are options
  (:mod:`mmext.apis.precision`);
* images are read and normalised to 3-channel BGR ``uint8`` here, so grayscale and RGBA inputs work and a missing
  or corrupt file is named in the error.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmseg.apis import inference_model
from mmseg.models import BaseSegmentor

from mmext.checkpoint import (
    check_finite_state_dict,
    check_model_state_dict,
    from_weights_only,
    read_checkpoint,
    unwrap_state_dict,
)
from mmext.datasets.decoding import decode_image, read_bytes
from mmext.models.backbones.inceptionnext_weights import load_backbone_checkpoint
from mmext.models.segmentors.bounded_postprocess import bounded_label_map, label_map_from_logits  # noqa: F401

from .builder import build_segmentor
from .precision import InferenceOptions, apply_inference_options, check_precision, default_precision

ImageInput = str | Path | np.ndarray

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
        return decode_image(read_bytes(path, what='image'), path)  # the loaders' rules: mmext.datasets.decoding
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


def init_segmentor(config: str | Path | Config, checkpoint: str | Path | None = None, device: str = 'cpu',
                   cfg_options: dict | None = None, checkpoint_key: str | None = None,
                   allow_non_finite: bool = False, precision: str | None = None, deploy: bool = False,
                   channels_last: bool = False, compile: bool = False, **deprecated) -> BaseSegmentor:
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
        precision: ``'fp32'``, or ``'bf16'`` / ``'fp16'`` autocast where ``device`` runs it natively (else a
            ``ValueError`` says why); ``None``: ``$MMEXT_PRECISION`` or fp32. See :mod:`mmext.apis.precision`.
        deploy: Fold the backbone's BatchNorms into its convs after loading (same outputs, faster).
        channels_last: Run in NHWC memory format (faster on CPUs).
        compile: ``torch.compile`` the backbone, neck and decode head (the first image of each size compiles).

    Returns:
        The segmentor in eval mode on ``device``, SyncBN reverted to BatchNorm, with ``cfg``, ``dataset_meta``
        (classes and palette from the checkpoint's meta, else ADE20K's when it has 150 classes) and
        ``inference_options`` set.
    """
    if 'key' in deprecated:
        warnings.warn('init_segmentor(key=...) is deprecated; use checkpoint_key=...', DeprecationWarning,
                      stacklevel=2)
        if checkpoint_key is not None:
            raise ValueError('give checkpoint_key only (key is its deprecated spelling)')
        checkpoint_key = deprecated.pop('key')
    if deprecated:
        raise TypeError(f'init_segmentor() got unexpected keyword arguments {sorted(deprecated)}')
    options = InferenceOptions(precision or default_precision(), deploy, channels_last, compile)
    check_precision(options.precision, device)  # before the minutes a large model and its checkpoint may take
    # init_weights() is never called and mmengine's torch.load (which fails under weights_only) never used.
    model = build_segmentor(config, cfg_options, log_dropped=checkpoint is None)
    meta: dict = {}
    if checkpoint is not None:
        meta = _load_weights(model, checkpoint, checkpoint_key, allow_non_finite)
    model.dataset_meta = meta.get('dataset_meta') or _default_dataset_meta(model)
    return apply_inference_options(model.to(device).eval(), options)


def _load_weights(model: BaseSegmentor, checkpoint: str | Path, checkpoint_key: str | None = None,
                  allow_non_finite: bool = False) -> dict:
    """Load a segmentor or a backbone-only checkpoint into ``model``; return its decoded ``meta`` (or ``{}``)."""
    filename = str(checkpoint)
    raw = read_checkpoint(filename)  # weights_only / safetensors; names the file on any failure
    state, _ = unwrap_state_dict(raw, filename, key=checkpoint_key)
    if not any(k.startswith(_SEGMENTOR_PREFIXES) for k in state):
        print_log(f'{filename} holds no decode_head.* / neck.* / auxiliary_head.* tensors: loading it as '
                  'backbone weights; the heads stay randomly initialised.', logger='current')
        load_backbone_checkpoint(model.backbone, filename, key=checkpoint_key,
                                  allow_non_finite=allow_non_finite)
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


def apply_test_pipeline(cfg: Config, image: np.ndarray) -> dict:
    """The config's ``test_pipeline`` on one BGR ``uint8`` array (loaded from the array, annotations skipped):
    ``dict(inputs=(3, h, w) uint8 tensor, data_samples=SegDataSample)``, as mmseg's ``inference_model`` makes it."""
    from mmengine.dataset import Compose

    pipeline_cfg = copy.deepcopy(cfg.test_pipeline)
    if pipeline_cfg[0].get('type') in ('LoadImageFromFile', 'CheckedLoadImageFromFile'):
        pipeline_cfg[0] = dict(type='LoadImageFromNDArray')
    pipeline_cfg = [t for t in pipeline_cfg if 'LoadAnnotations' not in str(t.get('type'))]
    return Compose(pipeline_cfg)(dict(img=image))


@torch.no_grad()
def _bounded_label_map(model: BaseSegmentor, image: np.ndarray, max_tile_bytes: int) -> np.ndarray:
    """mmseg's ``inference_model`` + ``postprocess_result`` for one image, with the bounded-memory resize + arg-max."""
    data = apply_test_pipeline(model.cfg, image)
    batch = model.data_preprocessor(dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
    meta = batch['data_samples'][0].metainfo
    return bounded_label_map(model, model.inference(batch['inputs'], [meta])[0], meta, max_tile_bytes)


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
