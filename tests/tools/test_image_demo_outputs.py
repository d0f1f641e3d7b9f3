"""tools/demo/image_demo.py never overwrites an input, keeps same-stem inputs apart, counts what it wrote and skips
(reporting) an image it cannot segment."""
import cv2
import numpy as np
import pytest

SMALL = ['model.backbone.arch=atto', 'model.decode_head.in_channels=[40,80,160,320]', 'model.decode_head.channels=16',
         'model.auxiliary_head.in_channels=160', 'test_pipeline.1.scale=(256,64)']


@pytest.fixture(scope='module')
def demo(load_tool):
    return load_tool('tools/demo/image_demo.py')


@pytest.fixture(scope='module')
def config(repo_root) -> str:
    return str(repo_root / 'configs/upernet_inceptionnext_t_ade20k.py')


@pytest.fixture
def sample(ade20k_samples) -> np.ndarray:
    return cv2.imread(str(ade20k_samples / 'images' / 'validation' / 'ADE_val_00000002.jpg'))[:96, :128]


def test_out_dir_equal_to_the_input_folder_is_refused(demo, config, sample, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([sample, np.full(sample.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / 'b.jpg'), sample)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(ValueError, match=r'refusing to overwrite input image\(s\) .*rgba\.png'):
        demo.main([str(folder), config, '--out-dir', str(folder), '--cfg-options', *SMALL])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # untouched, nothing added


def test_same_stems_kept_apart_count_printed_and_a_1x500_image_skipped(demo, config, sample, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'rgba.jpg'), sample)
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([sample, np.full(sample.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / 'b.png'), sample[:, ::-1])
    cv2.imwrite(str(folder / 'thin.png'), np.full((1, 500, 3), 100, np.uint8))
    out = tmp_path / 'out'
    status = demo.main([str(folder), config, '--out-dir', str(out), '--cfg-options', *SMALL])
    captured = capsys.readouterr()
    assert status == 1
    assert sorted(p.name for p in out.iterdir()) == ['b.png', 'rgba_jpg.png', 'rgba_png.png']
    for name in ('b.png', 'rgba_jpg.png', 'rgba_png.png'):
        assert cv2.imread(str(out / name)).shape[0] == sample.shape[0]
    assert f'wrote 3 picture(s) to {out}, skipped 1' in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith('FAILED ')]
    assert len(failed) == 1 and failed[0].startswith(f'FAILED {folder / "thin.png"}: ')
