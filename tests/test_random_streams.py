"""The checkpointed random streams of methods (methods/random_streams.py): seeds drawn from the
global RNG one integer each, and state round trips before and after first use."""

import torch

from methods.random_streams import DeviceGenerator, GeneratorStateMixin, draw_seed, seeded_generator, step_generator


def test_seeds_are_single_draws_from_the_global_rng_in_call_order():
    torch.manual_seed(11)
    expected = [int(torch.randint(0, 2**62, (1,)).item()) for _ in range(3)]
    torch.manual_seed(11)
    seed = draw_seed()
    cpu = seeded_generator()
    device = DeviceGenerator()
    assert [seed, cpu.initial_seed(), device.seed] == expected


def test_step_generator_is_seeded_from_one_draw_of_the_cpu_stream():
    a, b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    step = step_generator(a, "cpu")
    assert step.initial_seed() == int(torch.randint(0, 2**62, (1,), generator=b).item())
    assert torch.equal(a.get_state(), b.get_state())  # one draw each


def test_device_generator_state_round_trips_before_and_after_first_use():
    a = DeviceGenerator(5)
    fresh = DeviceGenerator(0)
    fresh.load(a.state())  # before first use: the seed alone
    assert torch.equal(torch.rand(4, generator=fresh.on("cpu")), torch.rand(4, generator=a.on("cpu")))
    saved = a.state()
    assert saved["seed"] == 5 and saved["pending"]["device_type"] == "cpu"
    b = DeviceGenerator(0)
    b.load(saved)
    c = DeviceGenerator(1)
    c.load(b.state())  # restored but not yet used: the pending state is what it stores
    expected = torch.rand(6, generator=a.on("cpu"))
    assert torch.equal(torch.rand(6, generator=b.on("cpu")), expected)
    assert torch.equal(torch.rand(6, generator=c.on("cpu")), expected)


def test_generator_state_mixin_stores_the_cpu_stream():
    class Holder(GeneratorStateMixin):
        def __init__(self, seed):
            self._rng = torch.Generator().manual_seed(seed)

    a, b = Holder(1), Holder(2)
    torch.rand(3, generator=a._rng)
    b.set_extra_state(a.get_extra_state())
    assert torch.equal(torch.rand(5, generator=a._rng), torch.rand(5, generator=b._rng))
