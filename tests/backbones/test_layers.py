"""The shared convolutional building blocks."""

from __future__ import annotations

import torch

from trainables.backbones.layers import instance_norm_leaky_relu


def test_lean_instance_norm_leaky_relu_matches_the_stock_modules() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64)
    stock = torch.nn.functional.leaky_relu(torch.nn.functional.instance_norm(x), 0.2)
    (expected,) = torch.autograd.grad(stock, x, grad)
    lean = instance_norm_leaky_relu(x)
    (actual,) = torch.autograd.grad(lean, x, grad)
    torch.testing.assert_close(lean, stock)
    torch.testing.assert_close(actual, expected)
    assert torch.autograd.gradcheck(instance_norm_leaky_relu, (x[:1, :2, :3, :3, :3].detach().requires_grad_(),))
