"""equivar.core.sectors: the twirl, sector blocks and their closed forms, against naive references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivar import data
from equivar.core import rings, sectors
from equivar.core.model import ModelConfig, QuantumClassifier, amplitudes

N_RAD, N_ANG = 4, 3
R, N = 16, 8


@pytest.fixture(scope="module")
def grids():
    x, _ = data.load("fashion-mnist", "test", n=10, seed=11)
    return rings.sample(x, R, N)


def density(grids):
    x = sectors.normalise(grids).reshape(len(grids), -1)
    return np.einsum("bi,bj->bij", x, x.conj())


class TestDft:
    def test_matches_the_defining_sum(self, rng, atol):
        x = rng.standard_normal((3, R, N))
        naive = np.zeros((3, R, N), complex)
        for k in range(N):
            for theta in range(N):
                naive[..., k] += x[..., theta] * np.exp(-2j * np.pi * k * theta / N)
        assert np.abs(sectors.angular_dft(x) - naive / np.sqrt(N)).max() < atol
        assert np.abs(sectors.inverse_angular_dft(sectors.angular_dft(x)) - x).max() < atol

    def test_torch_and_numpy_agree(self, grids, atol):
        a = sectors.sector_blocks(grids)
        b = sectors.sector_blocks(torch.as_tensor(grids)).numpy()
        assert np.abs(a - b).max() < atol


class TestClosedForms:
    def test_rho0_is_n_mu_mu(self, grids, atol):
        mu = sectors.ring_means(sectors.normalise(grids))
        rho0 = sectors.sector_blocks(grids)[:, 0]
        assert np.abs(rho0 - N * np.einsum("br,bs->brs", mu, mu)).max() < atol
        assert np.abs(sectors.sector_weights(grids)[:, 0] - N * (mu ** 2).sum(1)).max() < atol

    def test_parseval_weights_sum_to_one(self, grids, atol):
        assert np.abs(sectors.sector_weights(grids).sum(-1) - 1).max() < atol

    def test_real_images_conjugate_sectors(self, grids, atol):
        b = sectors.sector_blocks(grids)
        for k in range(1, N):
            assert np.abs(b[:, N - k] - b[:, k].conj()).max() < atol

    def test_blocks_sum_to_the_gram_matrix(self, grids, atol):
        x = sectors.normalise(grids)
        gram = np.einsum("brt,bst->brs", x, x)
        assert np.abs(sectors.sector_blocks(grids).sum(1) - gram).max() < atol

    def test_sector_blocks_are_the_projected_density(self, grids, atol):
        rho = density(grids)
        f = sectors.fourier_vectors(N_ANG)
        blocks = sectors.sector_blocks(grids)
        for k in range(N):
            vec = np.kron(np.eye(R), f[:, [k]])  # columns |r>|f_k>
            assert np.abs(vec.conj().T @ rho @ vec - blocks[:, k]).max() < atol

    def test_fold_weights(self):
        w = np.array([[0.5, 0.1, 0.05, 0.02, 0.06, 0.02, 0.05, 0.2]])
        assert np.allclose(sectors.fold_weights(w), [[0.5, 0.3, 0.1, 0.04, 0.06]])


class TestTwirl:
    def test_group_sum_equals_sector_projection(self, grids, atol):
        rho = density(grids)
        assert np.abs(sectors.twirl(rho, N_RAD, N_ANG)
                      - sectors.block_diagonal_part(rho, N_RAD, N_ANG)).max() < atol

    def test_idempotent_and_invariant(self, grids, atol):
        t = sectors.twirl(density(grids), N_RAD, N_ANG)
        assert np.abs(sectors.twirl(t, N_RAD, N_ANG) - t).max() < atol
        r = sectors.rotation_matrix(3, N_RAD, N_ANG)
        assert np.abs(r @ t @ r.T - t).max() < atol

    def test_negative_control_rho_itself_is_not_invariant(self, grids):
        rho = density(grids)
        assert np.abs(sectors.twirl(rho, N_RAD, N_ANG) - rho).max() > 1e-3

    def test_projectors_resolve_the_identity(self, atol):
        p = sectors.sector_projectors(N_RAD, N_ANG)
        assert np.abs(p.sum(0) - np.eye(R * N)).max() < atol
        assert np.abs(p[1] @ p[2]).max() < atol and np.abs(p[2] @ p[2] - p[2]).max() < atol


@pytest.mark.parametrize("variant", ["west", "sector"])
@pytest.mark.parametrize("readout", ["probs", "z"])
class TestModelIdentities:
    """C1 and C2 for every equivariant variant, random weights."""

    def model(self, variant, readout, seed):
        cfg = ModelConfig(variant=variant, readout=readout, n_layers=3,
                          n_classes=4 if readout == "z" else 10)
        return QuantumClassifier(cfg, seed=seed)

    def test_prediction_depends_only_on_the_twirled_input(self, variant, readout, grids, atol):
        for seed in (0, 1):
            model = self.model(variant, readout, seed)
            M = model.observables().detach().numpy()
            rho = density(grids)
            t = sectors.twirl(rho, N_RAD, N_ANG)
            f = model.readout(amplitudes(grids)).detach().numpy()
            assert np.abs(f - np.einsum("bij,cji->bc", t, M).real).max() < atol
            assert np.abs(np.einsum("bij,cji->bc", rho - t, M)).max() < atol

    def test_prediction_is_the_sum_of_sector_terms(self, variant, readout, grids, atol):
        model = self.model(variant, readout, 2)
        blocks = sectors.operator_blocks(model.observables().detach().numpy(), N_RAD, N_ANG)
        f = model.readout(amplitudes(grids)).detach().numpy()
        assert np.abs(sectors.sector_contributions(grids, blocks).sum(-1) - f).max() < atol


def test_negative_control_baseline_has_cross_sector_terms(grids):
    model = QuantumClassifier(ModelConfig(variant="baseline", n_layers=2), seed=0)
    M = model.observables().detach().numpy()
    rho = density(grids)
    rest = np.einsum("bij,cji->bc", rho - sectors.twirl(rho, N_RAD, N_ANG), M)
    assert np.abs(rest).max() > 1e-3


def test_operator_blocks_match_a_naive_loop(rng, atol):
    M = rng.standard_normal((R * N, R * N)) + 1j * rng.standard_normal((R * N, R * N))
    f = sectors.fourier_vectors(N_ANG)
    blocks = sectors.operator_blocks(M, N_RAD, N_ANG)
    for k in (0, 3):
        naive = np.array([[np.kron(np.eye(R)[r], f[:, k]).conj() @ M @ np.kron(np.eye(R)[s], f[:, k])
                           for s in range(R)] for r in range(R)])
        assert np.abs(blocks[k] - naive).max() < atol


class TestFilters:
    def test_keep_sectors(self, grids, atol):
        ring_mean_only = sectors.keep_sectors(grids, [0])
        assert np.isrealobj(ring_mean_only)
        assert np.abs(ring_mean_only - grids.mean(-1, keepdims=True)).max() < atol
        rest = sectors.keep_sectors(grids, range(1, N))
        assert np.abs(ring_mean_only + rest - grids).max() < atol

    def test_keep_sectors_range_check(self, grids):
        with pytest.raises(ValueError, match="sector k must be in 0..7, got 8"):
            sectors.keep_sectors(grids, [8])

    def test_exchange_modes_swaps_weights_and_keeps_the_gram_matrix(self, grids, atol):
        swapped = sectors.exchange_modes(grids, 0, 2)
        w, w2 = sectors.sector_weights(grids), sectors.sector_weights(swapped)
        assert np.abs(w2[:, [0, 2]] - w[:, [2, 0]]).max() < atol
        assert np.abs(sectors.sector_blocks(swapped).sum(1)
                      - sectors.sector_blocks(grids).sum(1)).max() < atol

    def test_sector_partners(self):
        assert sectors.sector_partners(0, 8) == [0]
        assert sectors.sector_partners(3, 8) == [3, 5]
        assert sectors.sector_partners(4, 8) == [4]


def test_normalise_rejects_zero_grids():
    with pytest.raises(ValueError, match="all zero"):
        sectors.normalise(np.zeros((1, 4, 8)))


def test_commutant_dimension():
    dims = sectors.commutant_dimension(N_RAD, N_ANG)
    assert dims["invariant (accessible)"] * N == dims["all operators"]
    # the invariant operators form exactly the commutant: count it by brute force for a small case
    n_rad, n_ang = 1, 2
    gens = sectors.rotation_matrix(1, n_rad, n_ang)
    dim = 2 ** (n_rad + n_ang)
    basis = np.eye(dim * dim).reshape(dim * dim, dim, dim)
    constraints = np.stack([(gens @ b - b @ gens).ravel() for b in basis], axis=1)
    null = dim * dim - np.linalg.matrix_rank(constraints)
    assert null == sectors.commutant_dimension(n_rad, n_ang)["invariant (accessible)"]


def test_weight_table():
    x, y = data.load("synthetic", "train", n=40)
    table = sectors.weight_table("synthetic", rings.sample(x, 16, 8), y, data.info("synthetic").classes)
    assert len(table) == 4 * 5
    sums = table.groupby("class")["weight_mean"].sum()
    assert np.allclose(sums, 1)
