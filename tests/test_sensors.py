"""anytouch.sensors: sensor names and integer ids (Python, numpy, torch) -> slot indices; fractional ids refused."""
import numpy as np
import pytest
import torch

from anytouch.sensors import sensor_id, sensor_tensor


def test_numpy_and_tensor_integer_scalars():
    assert sensor_id(np.int64(1)) == 1 and sensor_id(np.uint8(3)) == 3 and sensor_id(np.int32(-1)) == -1
    assert sensor_id(torch.tensor(2)) == 2 and type(sensor_id(np.int64(1))) is int
    assert sensor_tensor(np.int64(1), 3, 10).tolist() == [1, 1, 1]
    assert sensor_tensor(np.int16(-1), 2, 10).tolist() == [9, 9]


def test_lists_and_arrays_of_numpy_ints():
    assert sensor_tensor(list(np.array([1, 2, -1])), 3, 10).tolist() == [1, 2, 9]
    assert sensor_tensor([np.int64(0), "digit", 4], 3, 10).tolist() == [0, 1, 4]
    assert sensor_tensor(np.array([3, -1], dtype=np.int32), 2, 10).tolist() == [3, 9]
    assert sensor_tensor(np.array([2], dtype=np.uint8), 4, 10).tolist() == [2] * 4  # broadcast like a tensor
    assert sensor_tensor(np.array(["digit", "gelsight"]), 2, 10).tolist() == [1, 0]
    assert sensor_tensor(torch.tensor([1, 0], dtype=torch.int32), 2, 10).tolist() == [1, 0]
    with pytest.raises(ValueError, match="out of range"):
        sensor_tensor(np.array([1, 10]), 2, 10)


@pytest.mark.parametrize("bad", [
    torch.tensor([0.7, 1.2]), torch.tensor(1.0), np.array([0.7, 1.2]), np.array([1.0], dtype=np.float32),
    [0.7, 1.2], 1.0, np.float64(2.0), [np.float32(1.0)], torch.tensor([True, False]), np.array([True, False]),
])
def test_fractional_or_bool_ids_are_refused(bad):
    with pytest.raises(TypeError, match="sensor"):
        sensor_tensor(bad, 2, 10)


def test_fractional_scalar_names_the_value():
    with pytest.raises(TypeError, match=r"integers, got 0\.7 \(float\)"):
        sensor_id(0.7)
    with pytest.raises(TypeError, match="float32"):
        sensor_tensor(torch.tensor([0.7, 1.2]), 2, 10)
    with pytest.raises(TypeError):
        sensor_id(True)
