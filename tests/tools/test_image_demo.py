"""tools/demo/image_demo.py on the real ADE20K samples: pictures per image, ground truth side by side, bad input;
it never overwrites an input, keeps same-stem inputs apart, counts what it wrote and skips (reporting) an image it
cannot segment."""
import shutil

import cv2
import numpy as np
import pytest

from mmext.datasets import BadSampleError
from mmext.fileio import OutputPathError

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
    out = str(tmp_path / 'out')
    with pytest.raises(FileNotFoundError, match='nothing_here.jpg'):
        demo.main([str(tmp_path / 'nothing_here.jpg'), config, '--out-dir', out, '--cfg-options', *SMALL])
    corrupt = tmp_path / 'corrupt.png'
    shutil.copyfile(ade20k_samples / 'images' / 'validation' / 'ADE_val_00000001.jpg', corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated
    with pytest.raises(BadSampleError, match='corrupt.png'):
        demo.main([str(corrupt), config, '--out-dir', out, '--cfg-options', *SMALL])
    assert not (tmp_path / 'out' / 'corrupt.png').exists()


@pytest.fixture
def sample(ade20k_samples) -> np.ndarray:
    return cv2.imread(str(ade20k_samples / 'images' / 'validation' / 'ADE_val_00000002.jpg'))[:96, :128]


def test_out_dir_equal_to_the_input_folder_is_refused(demo, config, sample, tmp_path):
    folder = tmp_path / 'in'
    folder.mkdir()
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([sample, np.full(sample.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / 'b.jpg'), sample)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OutputPathError, match=f'--out-dir {folder} is the input FOLDER'):
        demo.main([str(folder), config, '--out-dir', str(folder), '--cfg-options', *SMALL])
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # untouched, nothing added


def test_outputs_never_touch_inputs_or_foreign_files(demo, config, sample, tmp_path):
    """BAD 6: ``IMG --out-dir <IMG's folder>`` overwrote ``<stem>.png`` (the image's mask); ``imgs/ --ann ann/
    --out-dir ann/`` overwrote every ground-truth label. Both are refused before the model is built."""
    imgs, ann = tmp_path / 'imgs', tmp_path / 'ann'
    imgs.mkdir()
    ann.mkdir()
    cv2.imwrite(str(imgs / 'a.jpg'), sample)
    cv2.imwrite(str(imgs / 'a.png'), np.zeros(sample.shape[:2], np.uint8))  # a mask beside its image
    cv2.imwrite(str(ann / 'a.png'), np.ones(sample.shape[:2], np.uint8))
    before = {p: p.read_bytes() for p in (imgs / 'a.jpg', imgs / 'a.png', ann / 'a.png')}
    with pytest.raises(OutputPathError, match=f'--out-dir {imgs} contains the input IMAGE {imgs / "a.jpg"}'):
        demo.main([str(imgs / 'a.jpg'), config, '--out-dir', str(imgs), '--cfg-options', *SMALL])
    with pytest.raises(OutputPathError, match=f'--out-dir {ann} is the input --ann {ann}'):
        demo.main([str(imgs), config, '--ann', str(ann), '--out-dir', str(ann), '--cfg-options', *SMALL])
    with pytest.raises(OutputPathError, match='lies inside the input FOLDER'):
        demo.main([str(imgs), config, '--out-dir', str(imgs / 'pred'), '--cfg-options', *SMALL])
    # a picture over a file this run did not create: refused, unless --overwrite
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'somebody else')
    with pytest.raises(OutputPathError, match=f'--out-dir {out / "a.png"} exists and this run did not create it'):
        demo.main([str(imgs / 'a.jpg'), config, '--out-dir', str(out), '--cfg-options', *SMALL])
    assert {p: p.read_bytes() for p in before} == before and (out / 'a.png').read_bytes() == b'somebody else'
    assert demo.main([str(imgs / 'a.jpg'), config, '--out-dir', str(out), '--overwrite', '--cfg-options',
                      *SMALL]) == 0
    assert cv2.imread(str(out / 'a.png')).shape[0] == sample.shape[0]
    assert sorted(p.name for p in out.iterdir()) == ['a.png']  # no temporary left behind


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
