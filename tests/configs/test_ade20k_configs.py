"""The six ADE20K configs: recipe, a CPU train step, paper complexity, TTA, and mmseg's own train.py."""
import math
import os
import subprocess
import sys
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmext.analysis.complexity import segmentor_complexity
from mmext.apis import enable_tta
from mmext.apis.builder import build_segmentor
from mmext.engine.hooks import TRAINING_HOOKS
from mmext.models.backbones.inceptionnext import InceptionNeXt
from mmext.registry import DATASETS, HOOKS

REPO_ROOT = Path(__file__).resolve().parents[2]
METHODS = ('UPerNet', 'Semantic FPN')  # paper Table 6, Table 7


def select_models(model: dict) -> bool:
    """The paper's Tables 6 and 7: the configs with the paper's figures (see conftest.py)."""
    return 'Paper Figures' in model and model['Metadata']['Training Data'] == 'ADE20K'


def test_paper_configs_are_the_six_of_tables_6_and_7(zoo_models):
    paper = [m for m in zoo_models if select_models(m)]
    assert sorted((m['Paper Figures']['Table'], m['In Collection'], m['Metadata']['Architecture'][0]) for m in paper) \
        == [(6, 'UPerNet', f'InceptionNeXt-{s}') for s in 'BST'] + [(7, 'Semantic FPN', f'InceptionNeXt-{s}')
                                                                    for s in 'BST']


def test_config_recipe(zoo_model, zoo, load_config):
    cfg = load_config(zoo_model['Config'])
    meta = zoo_model['Metadata']
    method = zoo_model['In Collection']
    assert method in METHODS, f'{zoo_model["Name"]}: no recipe checks for {method!r}'
    arch = zoo.backbone_arch(zoo_model)
    channels = tuple(InceptionNeXt.arch_settings[arch]['dims'])
    backbone = cfg.model.backbone
    assert cfg.custom_imports == dict(imports=['mmext'], allow_failed_imports=False)
    assert backbone.type == 'InceptionNeXt' and backbone.arch == arch
    assert backbone.out_norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert backbone.drop_path_rate == meta['Drop Path']
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=meta['Pretrained'])
    assert meta['Pretrained'] == f'https://github.com/sail-sg/inceptionnext/releases/download/model/inceptionnext_{arch}.pth'
    if method == 'UPerNet':
        assert cfg.model.decode_head.type == 'UPerHead' and cfg.model.decode_head.channels == 512
        assert list(cfg.model.decode_head.in_channels) == list(channels)
        assert cfg.model.auxiliary_head.type == 'FCNHead'
        assert (cfg.model.auxiliary_head.in_channels, cfg.model.auxiliary_head.in_index) == (channels[2], 2)
        assert cfg.model.auxiliary_head.num_classes == 150
        warmup, poly = cfg.param_scheduler
        assert (warmup.type, warmup.end, poly.type, poly.power, poly.begin) == ('LinearLR', 1500, 'PolyLR', 1.0, 1500)
        assert cfg.optim_wrapper.optimizer.betas == (0.9, 0.999)
    else:
        assert cfg.model.neck.type == 'FPN' and cfg.model.neck.out_channels == 256
        assert list(cfg.model.neck.in_channels) == list(channels)
        assert cfg.model.decode_head.type == 'FPNHead'
        (poly, ) = cfg.param_scheduler
        assert (poly.type, poly.power, poly.begin) == ('PolyLR', 0.9, 0)
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert poly.end == cfg.train_cfg.max_iters == meta['Iterations']
    assert cfg.train_dataloader.batch_size * meta['GPUs'] == meta['Batch Size']
    assert cfg.optim_wrapper.optimizer.type == meta['Optimizer'] == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == meta['Learning Rate']
    assert cfg.optim_wrapper.optimizer.weight_decay == meta['Weight Decay']
    assert 'constructor' not in cfg.optim_wrapper  # layer decay is opt-in
    assert list(cfg.crop_size) == meta['Crop Size'] and list(cfg.model.data_preprocessor.size) == meta['Crop Size']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.type == 'CheckedADE20KDataset'
    assert DATASETS.get('CheckedADE20KDataset') is not None
    assert cfg.runner_type == 'SafeRunner'  # configs/_base_/mmext_runtime.py: it adds the TRAINING_HOOKS
    assert all(HOOKS.get(name) is not None for name in TRAINING_HOOKS)
    # Multi-scale + flip as mmseg 0.x did for the paper: img_scale (2048, 512) x ratios 0.5..1.75, both flips.
    assert cfg.tta_model.type == 'SegTTAModel'
    tta = cfg.tta_pipeline[1]
    assert tta.type == 'TestTimeAug' and len(tta.transforms) == 4
    assert [t.scale for t in tta.transforms[0]] == [(1024, 256), (1536, 384), (2048, 512), (2560, 640),
                                                     (3072, 768), (3584, 896)]
    assert [(t.type, t.prob) for t in tta.transforms[1]] == [('RandomFlip', 0.), ('RandomFlip', 1.)]


def _train_batch(num_images: int = 2, size: int = 64) -> dict:
    generator = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(num_images):
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, size, size), generator=generator))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
              for _ in range(num_images)]
    return dict(inputs=inputs, data_samples=samples)


def test_config_train_step(zoo_model, load_config):
    """The config's model, SyncBN reverted, takes one step of its optim_wrapper (layer decay, AdamW) on a 64x64 batch.

    One block per stage for speed: the widths, heads and recipe are the config's own (full-size models are built in
    ``test_config_complexity_matches_paper``)."""
    cfg = load_config(zoo_model['Config'])
    cfg.model.data_preprocessor.size = (64, 64)
    arch = InceptionNeXt.arch_settings[cfg.model.backbone.arch]
    cfg.model.backbone.arch = dict(arch, depths=(1, 1, 1, 1))
    model = build_segmentor(cfg, log_dropped=False).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    seg_weight = model.decode_head.conv_seg.weight.detach().clone()
    stem_weight = model.backbone.stem[0].weight.detach().clone()
    log_vars = model.train_step(_train_batch(), optim_wrapper)
    assert math.isfinite(log_vars['loss'].item())
    assert 'decode.loss_ce' in log_vars
    assert ('aux.loss_ce' in log_vars) == (zoo_model['In Collection'] == 'UPerNet')
    assert not torch.equal(model.decode_head.conv_seg.weight, seg_weight)
    assert not torch.equal(model.backbone.stem[0].weight, stem_weight)


def test_config_complexity_matches_paper(zoo_model, load_config):
    """Params (whole segmentor) exactly the metafile's and within 2% of the paper; MACs (inference path, scaled to
    the paper's input size) within 2% of the paper and 0.5% of the metafile's measured figure."""
    meta, paper = zoo_model['Metadata'], zoo_model['Paper Figures']
    height, width = paper['FLOPs Shape']
    assert meta['FLOPs Shape'] == paper['FLOPs Shape']
    # Counted at a quarter of the width and height, times 16, for speed: the MACs scale with the pixel count, all but
    # UperNet's pyramid-pooling convs on 1/2/3/6 cells a side (20M MACs for UperNet-T, overcounted 16x: +0.03%).
    # UperNet-T counted both ways: 933.82G at full size, 16 x 58.38G = 934.12G at a quarter.
    result = segmentor_complexity(load_config(zoo_model['Config']), shape=(height // 4, width // 4))
    result['macs'] *= 16
    assert result['params'] == meta['Parameters']
    assert result['params'] == pytest.approx(paper['Parameters (M)'] * 1e6, rel=0.02)
    assert result['macs'] == pytest.approx(paper['FLOPs (G)'] * 1e9, rel=0.02)
    assert result['macs'] == pytest.approx(meta['FLOPs (G)'] * 1e9, rel=0.005)


def test_get_flops_cli(load_tool, capsys):
    """``--shape`` is HEIGHT WIDTH; the row shows the metafile's measured and paper figures; exit 0 when the
    parameter count agrees with the metafile."""
    get_flops = load_tool('tools/analysis/get_flops.py')
    config = str(REPO_ROOT / 'configs' / 'fpn_inceptionnext_t_ade20k.py')
    assert get_flops.main([config, '--shape', '64', '128']) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if 'fpn_inceptionnext_t_ade20k' in line]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip('|').split('|')]
    assert cells[1] == '64x128'  # height x width
    assert float(cells[2].rstrip('M')) == pytest.approx(28.4, abs=0.1)
    # 1/32 of the 512x512 pixels: convs scale with the pixel count.
    assert float(cells[3].rstrip('G')) == pytest.approx(43.6 / 32, rel=0.05)
    assert cells[4] == '28.4M / 43.6G @512x512' and cells[5] == '28M / 44G @512x512'


def test_get_flops_reports_a_count_that_differs_from_the_metafile(load_tool, capsys):
    get_flops = load_tool('tools/analysis/get_flops.py')
    config = str(REPO_ROOT / 'configs' / 'fpn_inceptionnext_t_ade20k.py')
    assert get_flops.main([config, '--shape', '64', '64', '--cfg-options', 'model.decode_head.channels=64']) == 1
    assert 'the metafile lists 28,350,318' in capsys.readouterr().err


@pytest.mark.slow
def test_tta_pipeline_runs(ade20k_samples, tmp_path):
    """``tools/test.py --tta`` on the real samples: 6 scales x 2 flips merged into one prediction.

    All configs share this pipeline (``test_config_recipe``); the end-to-end run uses one image and a small model.
    """
    cfg = Config.fromfile(REPO_ROOT / 'configs' / 'upernet_inceptionnext_t_ade20k.py')
    cfg.work_dir = str(tmp_path)
    cfg.model.backbone.update(init_cfg=None, arch=dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64),
                                                       mlp_ratios=(2, 2, 2, 2), token_mixer=dict(branch_ratio=0.25)))
    cfg.model.decode_head.update(in_channels=[8, 16, 32, 64], channels=8)
    cfg.model.auxiliary_head.in_channels = 32
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.data_root = str(ade20k_samples)
    enable_tta(cfg)  # what tools/test.py --tta does

    init_default_scope('mmseg')
    views = DATASETS.build(cfg.test_dataloader.dataset)[0]
    assert len(views['inputs']) == 12
    short_sides = sorted({min(x.shape[-2:]) for x in views['inputs']})
    assert short_sides == [256, 384, 512, 640, 768, 896]  # the first sample is 683x512 (w x h)
    assert [s.flip for s in views['data_samples'][:2]] == [False, True]
    labels = views['data_samples'][0].gt_sem_seg.data
    assert labels.max() == 255 and labels[labels != 255].max() < 150  # reduce_zero_label applied

    cfg.test_dataloader.dataset.indices = [2]  # the smallest sample, 400x300
    # The run checks the merge of the 12 views, whose sizes are checked above: a quarter of each scale (CPU cost).
    for resize in cfg.test_dataloader.dataset.pipeline[1].transforms[0]:
        resize.scale = (resize.scale[0] // 4, resize.scale[1] // 4)
    metrics = Runner.from_cfg(cfg).test()
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'} and 0 <= metrics['mIoU'] <= 100


def _mmseg_train_py() -> Path:
    path = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    assert path.is_file(), f'mmseg ships no tools/train.py at {path}'
    return path


@pytest.mark.slow
def test_mmseg_own_train_py(ade20k_samples, tmp_path):
    """mmseg's shipped tools/train.py, which never imports mmext, trains UperNet-T from the config for 2 iterations
    (its heads narrowed to 32 channels: CPU time; the backbone is the full tiny one).

    ``custom_imports`` is the only way mmext gets in. The official-format checkpoint given with ``--cfg-options``
    is loaded: with the 1500-iteration warmup the weights barely move in 2 iterations.
    """
    backbone = InceptionNeXt(arch='tiny')
    official = {k: v for k, v in backbone.state_dict().items() if not k.startswith('out_norms.')}
    checkpoint = tmp_path / 'inceptionnext_tiny.pth'
    torch.save(official, checkpoint)
    work_dir = tmp_path / 'work'
    data = str(ade20k_samples)
    options = [
        f'model.backbone.init_cfg.checkpoint={checkpoint}',
        f'train_dataloader.dataset.data_root={data}', f'val_dataloader.dataset.data_root={data}',
        'train_dataloader.dataset.data_prefix.img_path=images/validation',
        'train_dataloader.dataset.data_prefix.seg_map_path=annotations/validation',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'train_dataloader.dataset.pipeline.2.scale=(128,32)', 'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'model.data_preprocessor.size=(64,64)', 'val_dataloader.dataset.pipeline.1.scale=(128,64)',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'model.decode_head.channels=32', 'model.auxiliary_head.channels=32',
        'default_hooks.checkpoint.save_optimizer=False',  # AdamW's state would triple the file; only weights are read
    ]
    config = REPO_ROOT / 'configs' / 'upernet_inceptionnext_t_ade20k.py'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, str(_mmseg_train_py()), str(config), '--work-dir', str(work_dir), '--cfg-options', *options],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'mIoU' in proc.stdout + proc.stderr

    saved = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=True)  # the configs' hook at work
    state = saved['state_dict']
    for key in ('stem.0.weight', 'stages.2.blocks.4.mlp.fc1.weight', 'stages.3.blocks.2.gamma'):
        torch.testing.assert_close(state[f'backbone.{key}'], official[key], atol=1e-6, rtol=0)
    assert state['backbone.out_norms.3.weight'].shape == (768, )
