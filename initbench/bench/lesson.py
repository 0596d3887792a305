"""The lesson's own way of training, kept as the baseline the benchmark compares against:
a torchvision dataset with a per-image ToTensor transform, SubsetRandomSampler and
DataLoader, one nn.Module with nn.Dropout after another, Adam, a loss.item() per batch.

    python -m initbench.bench.lesson [--epochs N] [--data-dir DIR] SCHEME...

trains each scheme this way and prints its validation accuracy (the benchmark times
this as a whole process).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from initbench import data, initializers
from initbench.data.fashion_mnist import FASHION_MNIST, ensure
from initbench.settings import DataSettings, NetworkSettings, OptimSettings, default_data_dir

N_INPUTS, N_CLASSES = FASHION_MNIST.input_size, len(FASHION_MNIST.class_names)
HIDDEN_1, HIDDEN_2 = NetworkSettings.hidden  # the lesson's settings are initbench's defaults


class LessonNet(nn.Module):
    def __init__(self, hidden_1: int = HIDDEN_1, hidden_2: int = HIDDEN_2,
                 p_dropout: float = NetworkSettings.dropout) -> None:
        super().__init__()
        self.fc1 = nn.Linear(N_INPUTS, hidden_1)
        self.fc2 = nn.Linear(hidden_1, hidden_2)
        self.fc3 = nn.Linear(hidden_2, N_CLASSES)
        self.dropout = nn.Dropout(p_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, N_INPUTS)
        x = self.dropout(F.relu(self.fc1(x)))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


def loaders(data_dir: Path, batch_size: int = OptimSettings.batch_size, split_seed: int = DataSettings.split_seed,
            train_samples: int | None = None):
    """Train and validation DataLoaders over the 80/20 split, images converted one by one;
    ``train_samples``: the first N of the training split's shuffled order (a quick bench)."""
    from torch.utils.data import DataLoader, SubsetRandomSampler
    from torchvision import datasets, transforms

    ensure(data_dir)
    train_data = datasets.FashionMNIST(str(data_dir), train=True, download=False, transform=transforms.ToTensor())
    order = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(split_seed)).tolist()
    n_val = int(len(order) * data.VALIDATION_FRACTION)
    train = DataLoader(train_data, batch_size=batch_size, sampler=SubsetRandomSampler(order[n_val:][:train_samples]))
    valid = DataLoader(train_data, batch_size=batch_size, sampler=SubsetRandomSampler(order[:n_val]))
    return train, valid


def train_model(model: nn.Module, train_loader, valid_loader, epochs: int = OptimSettings.epochs,
                lr: float = OptimSettings.lr) -> float:
    """Train as the lesson does; return the validation accuracy after the last epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for _ in range(epochs):
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    right = total = 0
    with torch.no_grad():
        for images, labels in valid_loader:
            right += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return right / total


def lesson_model(scheme: str) -> LessonNet:
    model = LessonNet()
    init = initializers.get(scheme)
    for layer in (model.fc1, model.fc2, model.fc3):
        init.init_layer(layer, None)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description="Train schemes the lesson's way (the benchmark's baseline).")
    parser.add_argument("schemes", nargs="+")
    parser.add_argument("--epochs", type=int, default=OptimSettings.epochs)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--train-samples", type=int, default=None, help="train on N of the training split")
    args = parser.parse_args()
    train_loader, valid_loader = loaders(args.data_dir, train_samples=args.train_samples)
    for name in args.schemes:
        accuracy = train_model(lesson_model(name), train_loader, valid_loader, args.epochs)
        print(f"{100 * accuracy:8.3f}% -- {name}")


if __name__ == "__main__":
    main()
