"""An independent TF1 (graph-mode) re-implementation of the original networks, for import tests.

It nests ``tf.compat.v1.variable_scope`` exactly as the original's slim code does (``slim.repeat``
opens a uniquified ``Repeat`` scope, blocks default to ``Block35`` / ``Block17`` / ``Block8``), so
the variable names come from TF1's own scoping rules rather than from our name map, and it runs
its own forward pass: an importer that maps a name to the wrong Keras variable cannot reproduce
these embeddings. Batch-norm statistics and biases are random so that each one matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1


def _var(name: str, shape: list[int], low: float, high: float) -> tf.Variable:
    return v1.get_variable(name, shape, initializer=v1.random_uniform_initializer(low, high))


def conv2d(net, num_outputs, kernel, stride=1, padding="SAME", scope=None, normalize=True,
           activation=True):  # fmt: skip
    """slim.conv2d with batch norm as the normaliser (or a bias when ``normalize`` is False)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    with v1.variable_scope(scope):
        fan_in = kh * kw * int(net.shape[-1])
        limit = float(np.sqrt(6.0 / (fan_in + kh * kw * num_outputs)))
        weights = _var("weights", [kh, kw, int(net.shape[-1]), num_outputs], -limit, limit)
        y = tf.nn.conv2d(net, weights, [1, stride, stride, 1], padding)
        if normalize:
            y = batch_norm(y)
        else:
            y = y + _var("biases", [num_outputs], -0.1, 0.1)
        return tf.nn.relu(y) if activation else y


def batch_norm(x):
    """slim.batch_norm in inference mode: beta, no gamma, epsilon 0.001."""
    n = int(x.shape[-1])
    with v1.variable_scope("BatchNorm"):
        beta = _var("beta", [n], -0.1, 0.1)
        mean = _var("moving_mean", [n], -0.1, 0.1)
        variance = _var("moving_variance", [n], 0.5, 1.5)
    return tf.nn.batch_normalization(x, mean, variance, beta, None, 0.001)


def max_pool(net, size, stride, padding="VALID"):
    return tf.nn.max_pool2d(net, size, stride, padding)


def _block(net, scale, activation, scope, default, towers, k):
    with v1.variable_scope(scope, default):
        outs = []
        with v1.variable_scope("Branch_0"):
            outs.append(conv2d(net, towers[0], 1, scope="Conv2d_1x1"))
        with v1.variable_scope("Branch_1"):
            t = conv2d(net, towers[1][0], 1, scope="Conv2d_0a_1x1")
            if default == "Block35":
                t = conv2d(t, towers[1][1], 3, scope="Conv2d_0b_3x3")
            else:
                t = conv2d(t, towers[1][1], [1, k], scope=f"Conv2d_0b_1x{k}")
                t = conv2d(t, towers[1][2], [k, 1], scope=f"Conv2d_0c_{k}x1")
            outs.append(t)
        if default == "Block35":
            with v1.variable_scope("Branch_2"):
                t = conv2d(net, towers[2][0], 1, scope="Conv2d_0a_1x1")
                t = conv2d(t, towers[2][1], 3, scope="Conv2d_0b_3x3")
                outs.append(conv2d(t, towers[2][2], 3, scope="Conv2d_0c_3x3"))
        mixed = tf.concat(outs, 3)
        up = conv2d(mixed, int(net.shape[3]), 1, normalize=False, activation=False,
                    scope="Conv2d_1x1")  # fmt: skip
        net = net + scale * up
        return tf.nn.relu(net) if activation else net


def block35(net, scale=1.0, activation=True, scope=None):
    return _block(net, scale, activation, scope, "Block35", (32, (32, 32), (32, 32, 32)), 3)


def block17(net, scale=1.0, activation=True, scope=None):
    return _block(net, scale, activation, scope, "Block17", (128, (128, 128, 128)), 7)


def block8(net, scale=1.0, activation=True, scope=None):
    return _block(net, scale, activation, scope, "Block8", (192, (192, 192, 192)), 3)


def repeat(net, n, block, **kwargs):
    """slim.repeat: a uniquified ``Repeat`` scope holding ``<block>_1 .. <block>_n``."""
    with v1.variable_scope(None, "Repeat"):
        for i in range(n):
            net = block(net, scope=f"{block.__name__}_{i + 1}", **kwargs)
    return net


def bottleneck(net, size):
    """slim.fully_connected with batch norm as the normaliser (no bias, no activation)."""
    with v1.variable_scope("Bottleneck"):
        n = int(net.shape[-1])
        limit = float(np.sqrt(6.0 / (n + size)))
        weights = _var("weights", [n, size], -limit, limit)
        return batch_norm(tf.matmul(net, weights))


def inception_resnet_v1(images, bottleneck_size=128):
    with v1.variable_scope("InceptionResnetV1"):
        net = conv2d(images, 32, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
        net = conv2d(net, 32, 3, padding="VALID", scope="Conv2d_2a_3x3")
        net = conv2d(net, 64, 3, scope="Conv2d_2b_3x3")
        net = max_pool(net, 3, 2)
        net = conv2d(net, 80, 1, padding="VALID", scope="Conv2d_3b_1x1")
        net = conv2d(net, 192, 3, padding="VALID", scope="Conv2d_4a_3x3")
        net = conv2d(net, 256, 3, stride=2, padding="VALID", scope="Conv2d_4b_3x3")
        net = repeat(net, 5, block35, scale=0.17)
        with v1.variable_scope("Mixed_6a"):
            with v1.variable_scope("Branch_0"):
                b0 = conv2d(net, 384, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
            with v1.variable_scope("Branch_1"):
                b1 = conv2d(net, 192, 1, scope="Conv2d_0a_1x1")
                b1 = conv2d(b1, 192, 3, scope="Conv2d_0b_3x3")
                b1 = conv2d(b1, 256, 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
            net = tf.concat([b0, b1, max_pool(net, 3, 2)], 3)
        net = repeat(net, 10, block17, scale=0.10)
        with v1.variable_scope("Mixed_7a"):
            towers = []
            for i, filters in enumerate([(256, 384), (256, 256), (256, 256, 256)]):
                with v1.variable_scope(f"Branch_{i}"):
                    t = conv2d(net, filters[0], 1, scope="Conv2d_0a_1x1")
                    if len(filters) == 3:
                        t = conv2d(t, filters[1], 3, scope="Conv2d_0b_3x3")
                    towers.append(
                        conv2d(t, filters[-1], 3, stride=2, padding="VALID", scope="Conv2d_1a_3x3")
                    )
            net = tf.concat([*towers, max_pool(net, 3, 2)], 3)
        net = repeat(net, 5, block8, scale=0.20)
        net = block8(net, activation=False)
        net = tf.reduce_mean(net, axis=[1, 2])
        return bottleneck(net, bottleneck_size)


def _fire(net, squeeze, expand, scope):
    with v1.variable_scope(scope, "fire"):
        net = conv2d(net, squeeze, 1, scope="squeeze")
        with v1.variable_scope("expand"):
            e1 = conv2d(net, expand, 1, scope="1x1")
            e3 = conv2d(net, expand, 3, scope="3x3")
        return tf.concat([e1, e3], 3)


def squeezenet(images, bottleneck_size=128):
    with v1.variable_scope("squeezenet"):
        net = conv2d(images, 96, 7, stride=2, scope="conv1")
        net = max_pool(net, 3, 2)
        net = _fire(net, 16, 64, "fire2")
        net = _fire(net, 16, 64, "fire3")
        net = _fire(net, 32, 128, "fire4")
        net = max_pool(net, 2, 2)
        net = _fire(net, 32, 128, "fire5")
        net = _fire(net, 48, 192, "fire6")
        net = _fire(net, 48, 192, "fire7")
        net = _fire(net, 64, 256, "fire8")
        net = max_pool(net, 3, 2)
        net = _fire(net, 64, 256, "fire9")
        net = conv2d(net, 1000, 1, normalize=False, activation=False, scope="conv10")
        net = tf.reduce_mean(net, axis=[1, 2])
        return bottleneck(net, bottleneck_size)


NETWORKS = {"inception_resnet_v1": inception_resnet_v1, "squeezenet": squeezenet}


def write_tf1_checkpoint(
    model_def: str, images: np.ndarray, prefix: Path, bottleneck_size: int = 128, seed: int = 1
) -> tuple[np.ndarray, list[str]]:
    """Build the TF1 network, randomly initialise it, embed ``images`` and ``Saver``-save it.

    Returns:
        ``(prelogits of images, variable names in the checkpoint)``.
    """
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        x = v1.placeholder(tf.float32, (None, *images.shape[1:]), name="input")
        prelogits = NETWORKS[model_def](x, bottleneck_size)
        saver = v1.train.Saver()
        names = [v.op.name for v in v1.global_variables()]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            out = sess.run(prelogits, {x: images})
            saver.save(sess, str(prefix), write_meta_graph=False)
    return out, names


def _dropout_when_training(net, phase_train):
    """The original's ``slim.dropout(is_training=phase_train)`` as TF1 builds it: Switch/Merge."""
    off, on = tf.raw_ops.Switch(data=net, pred=phase_train)
    return tf.raw_ops.Merge(inputs=[off, tf.nn.dropout(on, rate=0.5)]).output


def write_release(
    model_def: str, images: np.ndarray, folder: Path, name: str, bottleneck_size: int, seed: int = 1
) -> np.ndarray:
    """A model folder as the original releases it, and the original session's embeddings.

    Builds the network in graph mode with the original's tensor names (``input`` an identity of
    the image batch, ``phase_train`` a bool placeholder feeding dropout, ``embeddings`` the
    L2-normalised prelogits), saves ``model-<name>.meta``, ``model-<name>.ckpt-<N>`` and the
    ``checkpoint`` state file, and freezes the graph the original's way (``freeze_graph.py``:
    ``convert_variables_to_constants`` on ``embeddings``) into ``<name>.pb``.

    Args:
        images: standardised images, fed to ``input:0`` with ``phase_train`` False.

    Returns:
        The embeddings the original's session computes for ``images``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        batch = v1.placeholder(tf.float32, (None, *images.shape[1:]), name="image_batch")
        x = tf.identity(batch, "input")
        phase_train = v1.placeholder(tf.bool, name="phase_train")
        prelogits = NETWORKS[model_def](x, bottleneck_size)
        prelogits = _dropout_when_training(prelogits, phase_train)
        embeddings = tf.nn.l2_normalize(prelogits, 1, 1e-10, name="embeddings")
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            out = sess.run(embeddings, {x: images, phase_train: False})
            saver.save(sess, str(folder / f"model-{name}.ckpt"), global_step=275,
                       write_meta_graph=False)  # fmt: skip
            v1.train.export_meta_graph(str(folder / f"model-{name}.meta"))
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ["embeddings"]
            )
    (folder / f"{name}.pb").write_bytes(frozen.SerializeToString())
    return out
