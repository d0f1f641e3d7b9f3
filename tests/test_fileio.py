"""The output guard: outputs never touch inputs or files the tool did not create; writes are all or nothing."""
import os
from pathlib import Path

import pytest

from mmext import fileio
from mmext.fileio import OutputPathError, atomic_path, atomic_write, check_outputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'a.jpg').write_bytes(b'image')
    (tmp_path / 'imgs' / 'a.png').write_bytes(b'mask')
    (tmp_path / 'ann').mkdir()
    (tmp_path / 'ann' / 'a.png').write_bytes(b'label')
    return tmp_path


def test_output_that_is_an_input_is_refused(tree):
    with pytest.raises(OutputPathError, match=r'--out .*a\.jpg is the input VIDEO'):
        check_outputs({'--out': tree / 'imgs' / 'a.jpg'}, {'VIDEO': tree / 'imgs' / 'a.jpg'})


def test_output_folder_containing_an_input_is_refused(tree):
    with pytest.raises(OutputPathError, match='--out-dir .* contains the input IMAGE'):
        check_outputs({'--out-dir': tree / 'imgs'}, {'IMAGE': tree / 'imgs' / 'a.jpg'})
    with pytest.raises(OutputPathError, match='--out-dir .* is the input --ann'):
        check_outputs({'--out-dir': tree / 'ann'}, {'IMAGES': tree / 'imgs', '--ann': tree / 'ann'})


def test_output_inside_an_input_folder_is_refused(tree):
    with pytest.raises(OutputPathError, match='lies inside the input IMAGES'):
        check_outputs({'--out-dir': tree / 'imgs' / 'pred'}, {'IMAGES': tree / 'imgs'})


def test_paths_are_compared_resolved_through_dotdot_and_symlinks(tree):
    with pytest.raises(OutputPathError, match='is the input'):
        check_outputs({'--out': tree / 'ann' / '..' / 'imgs' / 'a.jpg'}, {'IMAGE': tree / 'imgs' / 'a.jpg'})
    (tree / 'link').symlink_to(tree / 'ann')
    with pytest.raises(OutputPathError, match='--out-dir .*link is the input --ann'):
        check_outputs({'--out-dir': tree / 'link'}, {'--ann': tree / 'ann'})
    os.symlink(tree / 'imgs' / 'a.jpg', tree / 'alias.jpg')
    with pytest.raises(OutputPathError, match='alias.jpg is the input'):
        check_outputs({'--out': tree / 'alias.jpg'}, {'VIDEO': tree / 'imgs' / 'a.jpg'}, allow_existing=True)


def test_relative_and_absolute_spellings_are_one_path(tree, monkeypatch):
    monkeypatch.chdir(tree / 'imgs')
    with pytest.raises(OutputPathError, match='is the input CHECKPOINT'):
        check_outputs({'--out': 'a.jpg'}, {'CHECKPOINT': tree / 'imgs' / 'a.jpg'}, allow_existing=True)


def test_existing_file_the_tool_did_not_create_is_refused_unless_allowed(tree):
    out = tree / 'model.onnx'
    out.write_bytes(b'somebody else')
    with pytest.raises(OutputPathError, match='--out .*model.onnx exists and this run did not create it.*--overwrite'):
        check_outputs({'--out': out}, {'CHECKPOINT': tree / 'imgs' / 'a.jpg'})
    check_outputs({'--out': out}, {'CHECKPOINT': tree / 'imgs' / 'a.jpg'}, allow_existing=True)
    # the files an output folder will receive: one existing name is enough to refuse
    with pytest.raises(OutputPathError, match=r'ann/a\.png exists'):
        check_outputs({'--out-dir': [tree / 'ann' / 'b.png', tree / 'ann' / 'a.png']}, {})


def test_fresh_outputs_beside_inputs_pass(tree):
    check_outputs({'--out-dir': tree / 'pred', '--out': tree / 'pred' / 'summary.json', '--unused': None},
                  {'IMAGES': tree / 'imgs', '--ann': tree / 'ann', '--optional': None})
    check_outputs({'--out-dir': tree / 'ann'}, {})  # an existing folder: only the files it receives count


def test_two_outputs_on_one_path_are_refused(tree):
    with pytest.raises(OutputPathError, match='--out .* and --show-dir .* are the same path'):
        check_outputs({'--show-dir': tree / 'vis', '--out': tree / 'vis'}, {})


def test_letter_case_differences_follow_the_file_system(tree, monkeypatch):
    """On a case-sensitive folder ``A.JPG`` is another file; where the file system folds case it is the input."""
    output, image = tree / 'imgs' / 'A.JPG', tree / 'imgs' / 'a.jpg'
    folds = fileio._folder_ignores_case(str(tree / 'imgs'))
    assert folds == (tree / 'imgs' / 'A.JPG').exists()
    if folds:
        with pytest.raises(OutputPathError, match='is the input'):
            check_outputs({'--out': output}, {'IMAGE': image}, allow_existing=True)
    else:
        check_outputs({'--out': output}, {'IMAGE': image})
    # the comparison itself, as it runs on a case-insensitive folder (macOS, Windows)
    monkeypatch.setattr(fileio, '_folder_ignores_case', lambda folder: True)
    with pytest.raises(OutputPathError, match='A.JPG is the input IMAGE'):
        check_outputs({'--out': output}, {'IMAGE': image}, allow_existing=True)


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / 'sub' / 'out.json'
    with atomic_write(target, 'w') as f:
        assert Path(f.name) != target and not target.exists()
        f.write('{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    with pytest.raises(RuntimeError), atomic_write(target, 'w') as f:
        f.write('{"half')
        raise RuntimeError('killed mid-way')
    assert target.read_text() == '{"a": 1}'
    assert sorted(p.name for p in target.parent.iterdir()) == ['out.json']
    with pytest.raises(ValueError, match='mode'), atomic_write(target, 'a'):
        pass


def test_atomic_path_keeps_the_suffix_and_needs_the_file_written(tmp_path):
    target = tmp_path / 'model.onnx'
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == '.onnx' and temporary != target
        temporary.write_bytes(b'graph')
    assert target.read_bytes() == b'graph'
    with pytest.raises(OSError, match='nothing was written for .*model.onnx'), atomic_path(target):
        pass  # e.g. cv2.imwrite returned False
    with pytest.raises(KeyError), atomic_path(target) as temporary:
        temporary.write_bytes(b'partial')
        raise KeyError('export failed')
    assert target.read_bytes() == b'graph' and [p.name for p in tmp_path.iterdir()] == ['model.onnx']
