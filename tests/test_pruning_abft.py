"""ABFT checksums for structured-sparse GEMMs (zoo.pruning.abft), asserted against invariants and brute force."""

import pytest
import torch

from zoo.pruning.abft import (
    FAULT_SITES,
    Fault,
    NMPacked,
    apply_fault,
    balanced_digits,
    check_rows,
    checked_gemm,
    inject_random_fault,
    nm_gemm,
    nm_mask,
    pack_nm,
    recombine_digits,
    row_checksum,
)

LEVELS = [(1, 4), (2, 4), (2, 8), (4, 8)]


def _wrap32(t: torch.Tensor) -> torch.Tensor:
    return (t + 2**31) % 2**32 - 2**31


def _int_layer(rows: int, k: int, n_out: int, n: int, m: int, seed: int = 0):
    """7-bit non-negative (post-ReLU) int8 activations and an int8 weight packed N:M."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (rows, k), generator=g).clamp(min=0).to(torch.int8)
    w = torch.randint(-128, 128, (n_out, k), generator=g).to(torch.int8)
    return x, w, pack_nm(w, n, m)


def _float_layer(rows: int, k: int, n_out: int, n: int, m: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g).relu().to(dtype)
    w = (torch.randn(n_out, k, generator=g) / k**0.5).to(dtype)
    return x, w, pack_nm(w, n, m)


# ---------------------------------------------------------------------------------------------------------------------
# No false alarms
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m", LEVELS)
@pytest.mark.parametrize("block_rows", [None, 5, 16])
def test_no_false_alarms_integer(n, m, block_rows):
    x, w, packed = _int_layer(40, 64, 24, n, m, seed=n * 10 + m)
    y, report = checked_gemm(lambda a: nm_gemm(a, packed), x, block_rows=block_rows)
    assert torch.equal(y.long(), _wrap32(x.long() @ (w * nm_mask(w, n, m)).long().t()))
    assert not report.detected and report.modulus == 2**32
    assert torch.count_nonzero(report.residual) == 0
    assert report.residual.shape == (1 if block_rows is None else -(-40 // block_rows), 24)
    for tiles in (8, 5, [[0, 3, 7], list(range(10, 24)), [1]]):  # contiguous, ragged, TW-like column groups
        rows = check_rows(x, y, row_checksum(packed.dense(), tiles))
        assert not rows.detected and torch.count_nonzero(rows.residual) == 0


@pytest.mark.parametrize("n,m", LEVELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_no_false_alarms_float(n, m, dtype):
    """fp32, and fp16/bf16 inputs with fp32 accumulate: every residual under τ, with and without abs_gemm."""
    x, w, packed = _float_layer(48, 512, 32, n, m, dtype, seed=n + m)
    gemm = lambda a: nm_gemm(a, packed)  # noqa: E731
    abs_gemm = lambda a: nm_gemm(a, packed.abs())  # noqa: E731
    for block_rows in (None, 7, 16):
        y, report = checked_gemm(gemm, x, abs_gemm=abs_gemm, block_rows=block_rows)
        assert y.dtype == torch.float32
        assert not report.detected, (report.residual.abs() / report.threshold).max()
        assert bool((report.threshold > 0).all())
        _, loose = checked_gemm(gemm, x, block_rows=block_rows)  # the estimate without |W|
        assert not loose.detected
    assert bool(report.residual.ne(0).any())  # rounding is really there, the comparison is not vacuous
    for tiles in (8, 5, [[0, 3, 7], list(range(10, 32))]):
        rows = check_rows(x, y, row_checksum(packed.dense(), tiles))
        assert not rows.detected, (rows.residual.abs() / rows.threshold).max()


# ---------------------------------------------------------------------------------------------------------------------
# Single corrupted outputs
# ---------------------------------------------------------------------------------------------------------------------


def test_every_single_corrupted_output_above_tau_is_detected_float():
    x, w, packed = _float_layer(12, 128, 10, 2, 4)
    y_clean = nm_gemm(x, packed)
    abs_gemm = lambda a: nm_gemm(a, packed.abs())  # noqa: E731
    _, clean = checked_gemm(lambda a: nm_gemm(a, packed), x, abs_gemm=abs_gemm, block_rows=5)
    rcs = row_checksum(packed.dense(), 4)
    clean_rows = check_rows(x, y_clean, rcs)
    # the bound is far from tight, so a change of 1.25 τ cannot be hidden by the clean residual
    assert bool((clean.residual.abs() <= 0.25 * clean.threshold).all())
    assert bool((clean_rows.residual.abs() <= 0.25 * clean_rows.threshold).all())
    for i in range(12):
        for j in range(10):
            sign = 1.0 if (i + j) % 2 else -1.0
            delta = sign * 1.25 * float(clean.threshold[i // 5, j])

            def faulty(a, i=i, j=j, delta=delta):
                out = nm_gemm(a, packed)
                out[i, j] += delta
                return out

            _, report = checked_gemm(faulty, x, abs_gemm=abs_gemm, block_rows=5)
            assert report.alarms.tolist() == [[i // 5, j]]
            y = y_clean.clone()
            y[i, j] += sign * 1.25 * float(clean_rows.threshold[i, j // 4])
            assert check_rows(x, y, rcs).alarms.tolist() == [[i, j // 4]]


@pytest.mark.parametrize("n,m", LEVELS)
def test_every_single_output_bit_flip_is_detected_integer(n, m):
    x, w, packed = _int_layer(9, 32, 6, n, m)
    y_clean = nm_gemm(x, packed)
    rcs = row_checksum(packed.dense(), 4)
    g = torch.Generator().manual_seed(1)
    for i in range(9):
        for j in range(6):
            for bit in (0, 7, 31, int(torch.randint(32, (1,), generator=g))):
                fault = Fault("output", row=i, col=j, bit=bit)
                y, report = checked_gemm(lambda a, f=fault: nm_gemm(a, packed, f), x, block_rows=4)
                assert report.alarms.tolist() == [[i // 4, j]]
                assert check_rows(x, y, rcs).alarms.tolist() == [[i, j // 4]]
    # a partial-sum register fault changes one element: detected by both schemes
    for step in range(packed.values[0].numel()):
        fault = Fault("accumulator", row=2, col=3, step=step, bit=(5 * step) % 32)
        y, report = checked_gemm(lambda a, f=fault: nm_gemm(a, packed, f), x)
        assert report.detected and check_rows(x, y, rcs).detected
        assert int((y != y_clean).sum()) == 1


# ---------------------------------------------------------------------------------------------------------------------
# Digit-serial arithmetic and wrap-around
# ---------------------------------------------------------------------------------------------------------------------


def test_balanced_digits_recombine_exactly():
    g = torch.Generator().manual_seed(0)
    edges = torch.tensor([0, 1, -1, 127, -128, 128, -129, 255, -256, 32767, -32768, 2**61, -(2**61), 2**62 - 1])
    v = torch.cat([torch.randint(-(2**40), 2**40, (500,), generator=g), edges])
    for bits in (8, 16, 3):
        digits = balanced_digits(v, bits)
        assert int(digits.min()) >= -(2 ** (bits - 1)) and int(digits.max()) <= 2 ** (bits - 1) - 1
        assert torch.equal(recombine_digits(digits, bits), v)
        assert torch.equal(recombine_digits(digits, bits, 32), _wrap32(v))
    # the checksum of 196 rows of int8 needs 2 digits
    assert balanced_digits(torch.tensor([196 * 127, -196 * 128])).shape[0] == 2
    # P = Σ_d 2^{8d} (D_d Wᵀ) through an int8-input GEMM equals IC Wᵀ exactly, and modulo 2^32
    w = torch.randint(-128, 128, (7, 50), generator=g).to(torch.int8)
    ic = torch.randint(-(2**30), 2**30, (3, 50), generator=g)
    digits = balanced_digits(ic)  # [D, 3, 50]
    parts = (digits.reshape(-1, 50).to(torch.int8).long() @ w.long().t()).reshape(digits.shape[0], 3, 7)
    assert torch.equal(recombine_digits(parts), ic @ w.long().t())
    assert torch.equal(recombine_digits(_wrap32(parts), 8, 32), _wrap32(ic @ w.long().t()))


def test_predicted_equals_actual_modulo_2_32_under_int32_overflow():
    # (a) int8 data fits int32, but P and S of one block of R = 256 rows do not: both wrap
    x, w, packed = _int_layer(256, 2048, 16, 2, 4)
    x = x.clamp(min=100)
    packed = pack_nm(w.abs().clamp(min=100).to(torch.int8), 2, 4)
    exact = x.long().sum(0) @ packed.dense().long().t()
    assert bool((exact.abs() >= 2**31).all())
    y, report = checked_gemm(lambda a: nm_gemm(a, packed), x)
    assert not report.detected and report.modulus == 2**32
    # (b) the GEMM's own int32 outputs overflow (int16 operands, wrap-around accumulators)
    g = torch.Generator().manual_seed(2)
    x16 = torch.randint(20000, 32767, (10, 8), generator=g).to(torch.int16)
    w16 = torch.randint(20000, 32767, (5, 8), generator=g).to(torch.int16)
    gemm = lambda a: _wrap32(a.long() @ w16.long().t()).to(torch.int32)  # noqa: E731
    assert bool(((x16.long() @ w16.long().t()).abs() >= 2**31).all())
    y, report = checked_gemm(gemm, x16, block_rows=3)
    assert not report.detected
    assert not check_rows(x16, y, row_checksum(w16, 2)).detected

    def faulty(a):
        out = gemm(a)
        out[4, 2] ^= 1 << 20
        return out

    _, report = checked_gemm(faulty, x16, block_rows=3)
    assert report.alarms.tolist() == [[1, 2]]


# ---------------------------------------------------------------------------------------------------------------------
# The blind spot: stored weights and indices
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["weight", "index"])
@pytest.mark.parametrize("n,m", [(2, 4), (2, 8)])
def test_stored_weight_and_index_faults_pass_the_input_checksum_but_not_the_row_checksum(kind, n, m):
    x, w, packed = _int_layer(32, 64, 16, n, m)
    y_clean = nm_gemm(x, packed)
    rcs = row_checksum(packed.dense(), 8)  # from the clean weights, before any fault
    g = torch.Generator().manual_seed(3)
    effective = 0
    while effective < 15:
        fault = inject_random_fault(kind, (32, 16), g, packed=packed)
        y, report = checked_gemm(lambda a, f=fault: nm_gemm(a, packed, f), x, block_rows=16)
        if torch.equal(y, y_clean):  # stuck at the value it had, or selecting an equal x column
            continue
        effective += 1
        assert not report.detected  # P and S agree: the documented blind spot
        assert check_rows(x, y, rcs).detected
    # the same in float32 for a finite corruption (an exponent bit that scales the weight by 2)
    xf, wf, pf = _float_layer(16, 64, 8, n, m)
    fault = Fault("weight", col=3, group=1, slot=0, bit=23, value=None)
    abs_gemm = lambda a: nm_gemm(a, pf.abs())  # noqa: E731
    y, report = checked_gemm(lambda a: nm_gemm(a, pf, fault), xf, abs_gemm=abs_gemm)
    assert not torch.allclose(y, nm_gemm(xf, pf)) and not report.detected
    assert check_rows(xf, y, row_checksum(pf.dense(), 4)).detected


# ---------------------------------------------------------------------------------------------------------------------
# The N:M emulator
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m", LEVELS)
def test_nm_emulator_equals_the_masked_dense_product(n, m):
    x, w, packed = _int_layer(20, 96, 12, n, m)
    mask = nm_mask(w, n, m)
    assert int(mask.reshape(12, -1, m).sum(-1).max()) <= n
    assert torch.equal(packed.dense(), w * mask)
    assert torch.equal(nm_gemm(x, packed), _wrap32(x.long() @ (w * mask).long().t()).to(torch.int32))
    for dtype in (torch.float32, torch.float16):
        xf, wf, pf = _float_layer(20, 96, 12, n, m, dtype)
        ref = xf.double() @ (wf * nm_mask(wf, n, m)).double().t()
        torch.testing.assert_close(nm_gemm(xf, pf).double(), ref, rtol=1e-5, atol=1e-5)
    # a given mask with fewer than n kept per group packs with zero spare slots on distinct positions
    sparse = mask & (torch.rand(mask.shape, generator=torch.Generator().manual_seed(0)) < 0.5)
    p2 = pack_nm(w, n, m, sparse)
    assert torch.equal(p2.dense(), w * sparse)
    assert bool((p2.indices.to(torch.int64).sort(-1).values.diff(dim=-1) > 0).all())  # distinct positions


def test_nm_mask_keeps_the_largest_with_ties_to_the_lower_index():
    w = torch.tensor([[1.0, -3.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, -2.0, 2.0, 1.0, -2.0]])
    assert nm_mask(w, 2, 4).tolist() == [
        [False, True, True, False, True, True, False, False],
        [True, True, False, False, True, True, False, False],
    ]
    w8 = torch.tensor([[-128, 127, 0, 1]], dtype=torch.int8)  # |−128| is the largest
    assert nm_mask(w8, 1, 4).tolist() == [[True, False, False, False]]


def test_faults_match_a_brute_force_systolic_emulation():
    x, w, packed = _int_layer(6, 32, 5, 2, 4)
    y = nm_gemm(x, packed)
    g = torch.Generator().manual_seed(4)
    for _ in range(10):
        # weight / index faults: re-run the array with the corrupted stored word
        f = inject_random_fault("weight", (6, 5), g, packed=packed)
        values = packed.values.clone()
        raw = values.view(torch.uint8)  # the stored bits
        b = int(raw[f.col, f.group, f.slot])
        raw[f.col, f.group, f.slot] = b | (1 << f.bit) if f.value else b & ~(1 << f.bit)
        assert torch.equal(apply_fault(x, packed, y, f), nm_gemm(x, NMPacked(values, packed.indices, 2, 4)))
        f = inject_random_fault("index", (6, 5), g, packed=packed)
        indices = packed.indices.clone()
        i = int(indices[f.col, f.group, f.slot])
        indices[f.col, f.group, f.slot] = i | (1 << f.bit) if f.value else i & ~(1 << f.bit)
        assert torch.equal(apply_fault(x, packed, y, f), nm_gemm(x, NMPacked(packed.values, indices, 2, 4)))
        # accumulator: step through the MACs of one output with a 32-bit register, flip after `step`
        f = inject_random_fault("accumulator", (6, 5), g, packed=packed)
        products = (x[f.row, packed.columns()[f.col]].long() * packed.values[f.col].reshape(-1).long()).tolist()
        register = 0
        for s, p in enumerate(products):
            register = int(_wrap32(torch.tensor(register + p)))
            if s == f.step:
                register = int(_wrap32(torch.tensor(register ^ (1 << f.bit))))
        assert int(apply_fault(x, packed, y, f)[f.row, f.col]) == register


def test_inject_random_fault_is_reproducible_and_in_range():
    _, _, packed = _int_layer(4, 64, 8, 2, 8)
    x = torch.zeros(10, 64, dtype=torch.int8)
    y = nm_gemm(x, packed)
    for kind in FAULT_SITES:
        a = [inject_random_fault(kind, (10, 8), torch.Generator().manual_seed(5), packed=packed) for _ in range(2)]
        assert a[0] == a[1] and a[0].site == kind
        g = torch.Generator().manual_seed(6)
        for _ in range(50):
            apply_fault(x, packed, y, inject_random_fault(kind, (10, 8), g, packed=packed))  # validates the ranges


# ---------------------------------------------------------------------------------------------------------------------
# Composition with any GEMM callable, and errors
# ---------------------------------------------------------------------------------------------------------------------


def test_checked_gemm_composes_with_an_arbitrary_callable():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(20, 64, generator=g)
    w = torch.randn(9, 64, generator=g)
    mask = nm_mask(w, 2, 4)
    gemm = lambda a: a @ (w * mask).t()  # noqa: E731
    abs_gemm = lambda a: a @ (w * mask).abs().t()  # noqa: E731
    y, report = checked_gemm(gemm, x, abs_gemm=abs_gemm, block_rows=4)
    torch.testing.assert_close(y, gemm(x))
    assert not report.detected and report.residual.shape == (5, 9)

    def faulty(a):
        out = gemm(a)
        out[9, 5] += 0.05
        return out

    _, report = checked_gemm(faulty, x, abs_gemm=abs_gemm, block_rows=4)
    assert report.alarms.tolist() == [[2, 5]]
    _, report = checked_gemm(faulty, x, block_rows=4)  # the looser estimate still sees it
    assert report.alarms.tolist() == [[2, 5]]


def test_errors_say_what_was_expected():
    w = torch.randn(4, 16)
    with pytest.raises(ValueError, match=r"\[M, K\]"):
        checked_gemm(lambda a: a, torch.randn(16))
    with pytest.raises(ValueError, match="for any M"):
        checked_gemm(lambda a: a[:3] @ w.t(), torch.randn(5, 16))
    with pytest.raises(TypeError, match="integer output"):
        checked_gemm(lambda a: a.float() @ w.t(), torch.ones(5, 16, dtype=torch.int8))
    with pytest.raises(TypeError, match="int8"):
        checked_gemm(lambda a: a, torch.ones(5, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="pad K"):
        pack_nm(torch.randn(4, 18), 2, 4)
    with pytest.raises(ValueError, match="disjoint"):
        row_checksum(w, [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="smaller block_rows"):
        checked_gemm(lambda a: a @ w.half().t(), torch.full((8, 16), 60000.0, dtype=torch.float16))
