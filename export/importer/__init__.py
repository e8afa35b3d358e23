"""Import a user's ONNX segmentation network into the segserve contract.

    python -m export import model.onnx --name mynet --size 512 --classes classes.txt

The network (one float NCHW image input; per-class scores ``[N, C, H, W]`` or one foreground map ``[N, 1, H, W]``)
is wrapped in ONNX itself, no PyTorch: uint8 NHWC ``IMAGE`` in, normalisation in the graph, ArgMax or threshold in
the graph, uint8 ``MASK`` out (optional float16 ``PROBS``), its spec in the file's metadata like a built-in export.

- ``source``: read and check the ONNX file (one clear error when it does not fit);
- ``wrap``: build the served graph around it;
- ``reference``: the same pre/post-processing in numpy around the raw ONNX, and the parity check;
- ``pipeline``: wrap -> parity -> static TensorRT check -> [engine] -> model repository;
- ``builtin``: networks shipped as built-in models through this path (u2netp);
- ``cli``: ``python -m export import``.
"""
