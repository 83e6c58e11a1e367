"""DropNoise is index-addressed (any way of walking a tensor gives the same numbers); kth_largest is exact."""

import torch

from graftkit.merge.methods.noise import CHUNK, DropNoise
from graftkit.merge.methods.sparsify import random_drop


def test_ranges_are_addressed_by_index_across_chunk_boundaries():
    n = 2 * CHUNK + 123
    whole = DropNoise(7).uniform((n,))
    stream = DropNoise(7)
    parts = [stream.uniform((k,)) for k in (5, CHUNK - 5, 17, CHUNK + 50, 56)]
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(DropNoise(7).at(CHUNK - 3).uniform((10,)), whole[CHUNK - 3:CHUNK + 7])


def test_numbers_are_uniform_and_keys_differ():
    u = DropNoise(1).uniform((200_000,))
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    assert not torch.equal(u[:100], DropNoise(2).uniform((100,)))
    assert torch.equal(DropNoise.for_tensor(0, "a").uniform((8,)), DropNoise.for_tensor(0, "a").uniform((8,)))
    assert not torch.equal(DropNoise.for_tensor(0, "a").uniform((8,)), DropNoise.for_tensor(0, "b").uniform((8,)))


def test_dare_keeps_density_share_and_rows_match_the_whole_mask():
    delta = torch.randn(300, 400)
    whole = random_drop(delta, 0.3, None, DropNoise(5))
    assert abs(float((whole != 0).float().mean()) - 0.3) < 0.01
    rows = torch.cat([random_drop(delta[a:a + 70], 0.3, None, DropNoise(5).at(a * 400)) for a in range(0, 300, 70)])
    assert torch.equal(rows, whole)


def test_kth_largest_is_exact_with_ties_and_at_the_ends():
    from graftkit.merge.methods.sparsify import kth_largest

    n = 1 << 21
    values = torch.randn(n, generator=torch.Generator().manual_seed(0)).abs()
    tied = torch.zeros(n)
    tied[:100] = 1.0
    rounded = (values * 4).round()  # a few hundred distinct values, heavy ties
    for v in (values, tied, rounded):
        for k in (1, 2, 99, 100, 101, n // 3, n // 2, n - 1, n):
            assert kth_largest(v, k) == torch.kthvalue(v, n - k + 1).values, k
