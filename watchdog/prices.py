"""RunPod Serverless GPU prices, per second, as a value the config owns (prices change; code does not).

The same table prices the simulator's ground-truth billing and the daemon's live estimate, so the two can
only disagree for reasons the product should notice (billing lag, GPU types it did not expect).
Figures: runpod-api.md §6 (flex and active $/s per GPU type).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuPrice:
    gpu_type_id: str
    """GPU type id as RunPod reports it per worker, e.g. ``"NVIDIA RTX A6000"``."""
    pool: str
    """The ``gpuIds`` pool id that contains it, e.g. ``"AMPERE_48"``."""
    flex_usd_per_s: float
    """Price of a flex (autoscaled) worker, USD per second."""
    active_usd_per_s: float
    """Price of an active (``workersMin``) worker, USD per second."""


@dataclass(frozen=True, slots=True)
class PriceTable:
    gpus: tuple[GpuPrice, ...]

    def lookup(self, gpu_type_id: str | None) -> GpuPrice:
        """Price for a GPU type; an unknown or missing type gets the most expensive (never under-count)."""
        for gpu in self.gpus:
            if gpu.gpu_type_id == gpu_type_id:
                return gpu
        return max(self.gpus, key=lambda g: g.flex_usd_per_s)

    def knows(self, gpu_type_id: str | None) -> bool:
        return any(g.gpu_type_id == gpu_type_id for g in self.gpus)

    def usd_per_s(self, gpu_type_id: str | None, *, active: bool = False) -> float:
        price = self.lookup(gpu_type_id)
        return price.active_usd_per_s if active else price.flex_usd_per_s

    def gpu_types_in_pool(self, pool: str) -> tuple[str, ...]:
        return tuple(g.gpu_type_id for g in self.gpus if g.pool == pool)


DEFAULT_PRICES = PriceTable(
    gpus=(
        GpuPrice("NVIDIA RTX A4000", "AMPERE_16", 0.00016, 0.00011),
        GpuPrice("NVIDIA RTX A4500", "AMPERE_16", 0.00016, 0.00011),
        GpuPrice("NVIDIA RTX A5000", "AMPERE_24", 0.00019, 0.00013),
        GpuPrice("NVIDIA L4", "AMPERE_24", 0.00019, 0.00013),
        GpuPrice("NVIDIA GeForce RTX 4090", "ADA_24", 0.00031, 0.00021),
        GpuPrice("NVIDIA RTX A6000", "AMPERE_48", 0.00034, 0.00024),
        GpuPrice("NVIDIA A40", "AMPERE_48", 0.00034, 0.00024),
        GpuPrice("NVIDIA L40S", "ADA_48_PRO", 0.00053, 0.00037),
        GpuPrice("NVIDIA A100 80GB PCIe", "AMPERE_80", 0.00076, 0.00060),
        GpuPrice("NVIDIA H100 80GB HBM3", "ADA_80_PRO", 0.00116, 0.00093),
        GpuPrice("NVIDIA H200", "HOPPER_141", 0.00155, 0.00124),
    )
)
