"""tools/demo/image_demo.py on the real ADE20K samples: pictures per image, ground truth side by side, bad input;
it never overwrites an input, keeps same-stem inputs apart, counts what it wrote and skips (reporting) an image it
cannot segment."""
import shutil

import cv2
import numpy as np
import pytest

# A small model on the real config (random weights) and ADE20K's test scale shrunk 8x, to keep the test fast.
SMALL = ['model.backbone.arch=atto', 'model.decode_head.in_channels=[40,80,160,320]', 'model.decode_head.channels=16',
         'model.auxiliary_head.in_channels=160', 'test_pipeline.1.scale=(256,64)']


@pytest.fixture(scope='module')
def demo(load_tool):
    return load_tool('tools/demo/image_demo.py')


@pytest.fixture(scope='module')
def config(repo_root) -> str:
    return str(repo_root / 'configs/upernet_inceptionnext_t_ade20k.py')


def test_folder_with_annotations_gives_side_by_side_pictures(demo, config, ade20k_samples, tmp_path):
    images = sorted((ade20k_samples / 'images' / 'validation').glob('*.jpg'))
    assert len(images) == 3
    status = demo.main([str(ade20k_samples / 'images' / 'validation'), config, '--out-dir', str(tmp_path),
                        '--ann', str(ade20k_samples / 'annotations' / 'validation'), '--cfg-options', *SMALL])
    assert status == 0
    for image in images:
        picture = cv2.imread(str(tmp_path / f'{image.stem}.png'))
        height, width = cv2.imread(str(image)).shape[:2]
        assert picture.shape[0] == height + 24  # a title bar over the panels
        assert picture.shape[1] > 3 * width  # input, ground truth, prediction, legend
        np.testing.assert_array_equal(picture[24:, :width], cv2.imread(str(image)))  # the input panel


def test_single_image_overlay_with_legend(demo, config, ade20k_samples, tmp_path):
    image = ade20k_samples / 'images' / 'validation' / 'ADE_val_00000003.jpg'
    assert demo.main([str(image), config, '--out-dir', str(tmp_path), '--opacity', '0.6', '--cfg-options',
                      *SMALL]) == 0
    picture, original = cv2.imread(str(tmp_path / 'ADE_val_00000003.png')), cv2.imread(str(image))
    assert picture.shape[0] == original.shape[0] and picture.shape[1] > original.shape[1]
    assert np.abs(picture[:, :original.shape[1]].astype(int) - original).mean() > 5  # colours blended in


def test_folder_reports_bad_files_and_goes_on(demo, config, ade20k_samples, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    bgr = cv2.imread(str(ade20k_samples / 'images' / 'validation' / 'ADE_val_00000002.jpg'))
    cv2.imwrite(str(folder / 'gray.png'), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([bgr, np.full(bgr.shape[:2], 128, np.uint8)]))
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    status = demo.main([str(folder), config, '--out-dir', str(tmp_path / 'out'), '--cfg-options', *SMALL])
    assert status == 1
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['gray.png', 'rgba.png']
    assert 'broken.jpg' in capsys.readouterr().err


def test_missing_or_corrupt_single_image_raises(demo, config, ade20k_samples, tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing_here.jpg'):
        demo.main([str(tmp_path / 'nothing_here.jpg'), config, '--out-dir', str(tmp_path), '--cfg-options', *SMALL])
    corrupt = tmp_path / 'corrupt.png'
    shutil.copyfile(ade20k_samples / 'images' / 'validation' / 'ADE_val_00000001.jpg', corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated
    with pytest.raises(ValueError, match='corrupt.png'):
        demo.main([str(corrupt), config, '--out-dir', str(tmp_path), '--cfg-options', *SMALL])


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
