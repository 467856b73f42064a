"""What both pipelines check before any work, so that a bad value never costs a read or a
training: the method's parameters, the run options, the threshold, the objects file and the
memory limit."""

from __future__ import annotations

from typing import Optional

from .io.memory import memory_limit as resolve_memory_limit
from .io.objects import check_objects_output
from .parameters import METHODS, check_run_options, check_threshold, refuse_network_options, resolve


def check_run(method: str, network: str, params: Optional[dict], *, seed, device, model, save_model, threshold: str,
              threshold_value, top_fraction, false_alarm_rate, objects: Optional[str], min_object_size: int,
              memory_limit) -> tuple:
    """(the network's parameters resolved, the seed, the memory limit in bytes) of a run of
    ``method``; ``network`` names the pipeline's network (its parameters are refused for the
    classical method)."""
    if method == network:
        params = resolve(METHODS[network], params)
        seed = check_run_options(seed, device)
    else:
        refuse_network_options(method, network, params, model, save_model)
    check_threshold(threshold, threshold_value, top_fraction, false_alarm_rate)
    if objects:
        check_objects_output(objects, min_object_size)
    return params, seed, resolve_memory_limit(memory_limit)
