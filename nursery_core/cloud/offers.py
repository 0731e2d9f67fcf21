"""Live Vast.ai offers as the rows people compare them by (the list-offers command and the dashboard's table)."""
from __future__ import annotations


def offer_row(o: dict) -> dict:
    """The columns people compare offers by: id, GPU, count, GB of GPU memory, $/hour, reliability, place."""
    return {"id": o.get("id"), "gpu_name": o.get("gpu_name"), "num_gpus": o.get("num_gpus"),
            "gpu_ram_gb": round((o.get("gpu_ram") or 0) / 1000.0, 1), "dph_total": o.get("dph_total"),
            "reliability": o.get("reliability"), "geolocation": o.get("geolocation"),
            "cuda": o.get("cuda_max_good"), "inet_down": o.get("inet_down")}


def search_offer_rows(max_dph: float | None = None, min_gpu_ram_gb: float | None = None, gpu: str | None = None,
                      disk_gb: float = 20.0, limit: int = 20) -> list[dict]:
    """Verified offers that fit, cheapest first, as offer_row rows. Raises what VastClient raises (no key,
    HTTP errors) as NurseryErrors."""
    from .vast import VastClient

    with VastClient() as c:
        return [offer_row(o) for o in c.search_offers(max_dph=max_dph, min_gpu_ram_gb=min_gpu_ram_gb,
                                                      gpu_name=gpu or None, disk_gb=disk_gb, limit=limit)]
