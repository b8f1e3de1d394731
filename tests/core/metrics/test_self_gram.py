"""self_gram: X Xᵀ from its upper block triangle equals the plain product."""

import pytest
import torch

from alignscope.core.metrics.self_gram import MIN_ROWS, self_gram


@pytest.mark.parametrize("n_rows", [MIN_ROWS - 1, MIN_ROWS, 257, 1023])
def test_equals_the_product(n_rows):
    rows = torch.randn(n_rows, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(n_rows))
    gram = self_gram(rows)
    assert torch.allclose(gram, rows @ rows.T, rtol=0, atol=1e-12)
    if n_rows >= MIN_ROWS:  # blocks below the diagonal are copies of those above
        assert gram[-1, 0] == gram[0, -1]


def test_integer_features_give_the_exact_product_into_out():
    rows = torch.randint(-5, 6, (301, 20), generator=torch.Generator().manual_seed(0)).float()
    out = torch.full((301, 301), float("nan"))
    assert self_gram(rows, out=out) is out
    assert torch.equal(out, rows @ rows.T)  # small integers: every sum is exact in float32
