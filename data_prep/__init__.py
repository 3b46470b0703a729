"""data_prep: readers, generators and tf.data pipelines that turn image data into training-ready shards.

data_prep never imports facevae.
"""
