"""facevae: convolutional VAEs with planar normalizing flows on TensorFlow, Keras 3 and TFP."""
