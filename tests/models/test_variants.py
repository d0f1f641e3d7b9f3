"""The paper's variants (Tables 1, 5, 8): classification forms within 2% of the paper's params and MACs.

Each row's paper figure and table are in :data:`mmext.models.variants.PAPER_VARIANTS` (``table``, ``row``,
``params``, ``macs``), e.g. Table 8 "remove horizontal band": 28.0M, 4.2G; Table 5 "MetaNeXt-Attn": 22M, 4.6G.
"""
import pytest

from mmext.models.variants import PAPER_VARIANTS

assert len(PAPER_VARIANTS) == 8 + 3 + 11  # Table 1 rows, Table 5 MetaNeXt rows, Table 8 rows


@pytest.fixture(scope='module')
def classifier_complexity(load_tool):
    return load_tool('tools/analysis/paper_variants.py').classifier_complexity


@pytest.mark.parametrize('name', sorted(PAPER_VARIANTS))
def test_classifier_params_and_macs_within_2_percent_of_the_paper(classifier_complexity, name):
    result = classifier_complexity(name, trace_size=32)  # exact scaling to 224, see classifier_complexity
    paper = PAPER_VARIANTS[name]
    where = f"{paper['table']} '{paper['row']}'"
    assert result['params'] == pytest.approx(paper['params'], rel=0.02), where
    assert result['macs'] == pytest.approx(paper['macs'], rel=0.02), where


def test_scaled_mac_count_equals_a_direct_trace(classifier_complexity):
    # the attention variant covers all three parts of the scaling: head, linear-in-pixels and attention
    assert classifier_complexity('metanext_attn_s', trace_size=64)['macs'] == \
        classifier_complexity('metanext_attn_s')['macs'] == 4_575_985_536


