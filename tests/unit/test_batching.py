"""Dynamic batching per device (issue #9): no queue delay on CPU, the spec's delay on GPU."""

from __future__ import annotations

import pytest

from export.config import ServingOptions, config_dict, queue_delay_us
from export.spec import SPECS, get_spec

BATCHED = [name for name, spec in SPECS.items() if spec.max_batch_size > 1]


@pytest.mark.parametrize("name", BATCHED)
@pytest.mark.parametrize("options", [ServingOptions.for_target("local"),
                                     ServingOptions.for_target("onnxruntime", device="cpu")],
                         ids=["local", "onnxruntime-cpu"])
def test_cpu_batcher_does_not_wait(name, options):
    batching = config_dict(get_spec(name), options)["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 0
    assert batching["preferred_batch_size"] == list(get_spec(name).preferred_batch_sizes)


@pytest.mark.parametrize("name", BATCHED)
@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_gpu_batcher_waits_the_specs_delay(name, target):
    spec = get_spec(name)
    options = ServingOptions.for_target(target)
    assert spec.max_queue_delay_us > 0
    assert config_dict(spec, options)["dynamic_batching"]["max_queue_delay_microseconds"] == spec.max_queue_delay_us
    assert queue_delay_us(spec, options) == spec.max_queue_delay_us


def test_rendered_cpu_config_has_no_queue_delay():
    from export.config import render_config

    text = render_config(get_spec("unet"), ServingOptions.for_target("local"))
    assert "dynamic_batching" in text and "max_queue_delay_microseconds" not in text
