"""Data: image datasets (Hub, folders, streams), labels, transforms, pixel values."""
