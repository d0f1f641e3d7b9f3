"""Writing InceptionNeXt weights: the mmseg-ready converter and the deploy folding of saved checkpoints, which the
tools in ``tools/model_converters/`` wrap."""
from __future__ import annotations

import os
import os.path as osp
from collections import OrderedDict
from collections.abc import Mapping

import torch

from mmext.checkpoint import CheckpointError, LoadReport, diff_state_dict, read_checkpoint, unwrap_state_dict
from mmext.checkpoint.report import preview
from mmext.version import __version__

from .inceptionnext import InceptionNeXt
from .inceptionnext_weights import arch_name, extract_backbone_state_dict, infer_arch, load_backbone_state_dict


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, arch: str | dict | None = None,
                       src_prefix: str | None = None, out_prefix: str = '') -> LoadReport:
    """Write an official / timm / mmengine InceptionNeXt checkpoint as an mmengine backbone checkpoint.

    The output is ``{'state_dict': {out_prefix + name: tensor}, 'meta': {...}}`` with the backbone's own names
    and no classification head, verified first by a strict load into ``InceptionNeXt(arch)`` (``arch`` inferred
    from the tensor shapes when ``None``). ``out_prefix='backbone.'`` makes a file for a segmentor's ``load_from``.
    """
    src, dst = str(src), str(dst)
    if osp.realpath(osp.expanduser(src)) == osp.realpath(osp.expanduser(dst)):  # symlinks too
        raise CheckpointError(f'refusing to overwrite the source checkpoint {src}')
    backbone = extract_backbone_state_dict(read_checkpoint(src), src_prefix, source=src)
    if arch is None:
        inferred = infer_arch(backbone.state_dict)
        if inferred is None:
            raise CheckpointError(f'cannot infer the InceptionNeXt arch of {src} from its shapes; pass arch=')
        arch = arch_name(inferred, InceptionNeXt.arch_settings) or inferred
    model = InceptionNeXt(arch=arch, init_cfg=None)
    report = load_backbone_state_dict(model, backbone, src, strict=True)
    if out_prefix and not out_prefix.endswith('.'):
        out_prefix += '.'
    state_dict = OrderedDict((out_prefix + k, backbone.state_dict[k].contiguous()) for k in report.loaded)
    meta = dict(arch=arch, source=osp.basename(src), converter='mmext inceptionnext2mmseg',
                mmext_version=__version__, num_tensors=len(state_dict))
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save({'state_dict': state_dict, 'meta': meta}, dst)
    return report


def deploy_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str | dict | None = None) -> dict:
    """Fold a training-form backbone state dict (the backbone's own key names) into the deploy form.

    Builds the training-form :class:`InceptionNeXt` (with BN output norms if ``out_norms.*`` keys are present),
    loads ``state_dict`` strictly, applies :meth:`InceptionNeXt.switch_to_deploy` and returns the new state dict,
    which loads into ``InceptionNeXt(arch, deploy=True)``. ``arch`` is read from the tensor shapes when ``None``.
    """
    if arch is None:
        arch = infer_arch(state_dict)
        if arch is None:
            raise ValueError('cannot infer the InceptionNeXt arch from the state dict (no stages.N.blocks / '
                             'token_mixer keys); pass arch=')
    if not any(k.endswith('.gamma') for k in state_dict):
        raise ValueError('the state dict has no blocks.N.gamma keys: it is already in deploy form (or not an '
                         'InceptionNeXt backbone)')
    norm_ids = sorted({int(k.split('.')[1]) for k in state_dict if k.startswith('out_norms.')})
    num_stages = len(InceptionNeXt._parse_arch(arch)['depths'])
    model = InceptionNeXt(arch, out_indices=norm_ids or tuple(range(num_stages)),
                          out_norm_cfg=dict(type='BN') if norm_ids else None, init_cfg=None)
    diff = diff_state_dict(model.state_dict(), state_dict)
    if diff:
        raise ValueError(f'state dict does not fit InceptionNeXt({arch!r}): missing keys {preview(diff.missing)}, '
                         f'unexpected keys {preview(diff.unexpected)}, shape mismatches {preview(diff.mismatched)}')
    model.load_state_dict(state_dict)
    model.eval().switch_to_deploy()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def convert_checkpoint_to_deploy(src: str | os.PathLike, dst: str | os.PathLike,
                                 arch: str | dict | None = None) -> dict:
    """Write the deploy form of a checkpoint: its InceptionNeXt backbone folded, every other tensor kept.

    ``src`` may be an official / timm backbone checkpoint (the classification head is dropped) or an mmengine
    checkpoint of a whole segmentor or detector (``backbone.*`` is folded, heads and necks are kept; optimizer
    and other non-tensor state are dropped). ``dst`` is ``{'state_dict': ..., 'meta': {...}}``, which a model
    with ``backbone=dict(type='InceptionNeXt', deploy=True, ...)`` loads. Returns ``meta``.
    """
    if osp.realpath(osp.expanduser(src)) == osp.realpath(osp.expanduser(dst)):
        raise CheckpointError(f'refusing to overwrite the source checkpoint {src}')
    checkpoint = read_checkpoint(src)
    backbone = extract_backbone_state_dict(checkpoint, source=str(src))
    folded = deploy_state_dict(backbone.state_dict, arch)
    tensors, _ = unwrap_state_dict(checkpoint, str(src))
    state_dict = {k: tensors[k] for k in backbone.ignored_keys}
    state_dict.update({backbone.prefix + k: v for k, v in folded.items()})
    meta = dict(deploy=True, source=str(src), backbone_prefix=backbone.prefix,
                dropped_head_keys=len(backbone.head_keys), folded_tensors=len(folded))
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return meta
