"""The analysis layer: measuring trained models (face metrics, Inception FID/KID, Frechet distance)."""
