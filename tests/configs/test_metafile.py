"""configs/metafile.yaml is complete and true: every config has an entry, and each entry's recipe and parameter
count are what the config builds. (Paper configs' FLOPs: test_ade20k_configs.py; detectors: test_coco_configs.py.)"""
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope

from mmext.registry import MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]


def select_models(model: dict) -> bool:
    return True


def test_every_config_has_a_metafile_entry(zoo_models):
    listed = {m['Config'] for m in zoo_models}
    configs = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / 'configs').rglob('*.py')
               if '_base_' not in p.parts}
    missing = sorted(configs - listed)
    assert not missing, f'configs without an entry in configs/metafile.yaml (see configs/README.md): {missing}'


def test_the_reader_names_a_broken_entry(zoo, tmp_path):
    metafile = tmp_path / 'metafile.yaml'
    text = (REPO_ROOT / 'configs' / 'metafile.yaml').read_text()
    metafile.write_text(text.replace('Parameters: 56398340', 'Parameters: 56.4M', 1))
    with pytest.raises(ValueError, match="model 'upernet_inceptionnext_t_ade20k': Metadata.Parameters must be"):
        zoo.load_models(metafile)
    metafile.write_text(text.replace('Config: configs/fpn_inceptionnext_t_ade20k.py',
                                     'Config: configs/fpn_inceptionnext_t.py', 1))
    with pytest.raises(ValueError, match="'configs/fpn_inceptionnext_t.py' is not a file"):
        zoo.load_models(metafile)


def test_entry_matches_its_config(zoo_model, load_config):
    cfg = load_config(zoo_model['Config'])
    meta = zoo_model['Metadata']
    backbone = cfg.model.backbone
    init_cfg = backbone.get('init_cfg')
    assert (init_cfg or {}).get('checkpoint') == meta.get('Pretrained'), 'Metadata.Pretrained vs init_cfg'
    if 'Drop Path' in meta:
        assert backbone.drop_path_rate == meta['Drop Path']
    if 'Iterations' in meta:
        assert cfg.train_cfg.max_iters == meta['Iterations']
    else:
        assert cfg.train_cfg.max_epochs == meta['Epochs']
    assert cfg.train_dataloader.batch_size * max(meta['GPUs'], 1) == meta['Batch Size']
    if 'Crop Size' in meta:
        assert list(cfg.crop_size) == meta['Crop Size']
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == (
        meta['Optimizer'], meta['Learning Rate'], meta['Weight Decay'])

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    with torch.device('meta'):  # counting needs shapes only
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == meta['Parameters']


@pytest.mark.parametrize('readme,everything', [('README.md', False), ('configs/README.md', True)])
def test_readme_tables_are_generated_from_the_metafile(zoo, zoo_models, readme, everything):
    table = zoo.zoo_table(zoo_models, everything=everything)
    assert table in (REPO_ROOT / readme).read_text(), (
        f'{readme}: its model-zoo table is stale; paste `python tools/misc/model_zoo.py{" --all" * everything}`')
