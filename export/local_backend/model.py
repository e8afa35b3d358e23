"""Triton python-backend model for the ``local`` target: the exported ONNX file, run with ONNX Runtime on CPU.

Written into ``<repo>/<model>/1/model.py`` by ``python -m export``; the ONNX file sits beside it. It runs in the
python backend stub's interpreter: the server's own environment (numpy<2 + onnxruntime, see serve/server.py).
Requests that the dynamic batcher groups are run as one batch. A request that fails gets an error response; the model
keeps serving.

Threads: the CPU cores this process may use are shared out among the model's instances (each instance is its own
stub process), one ONNX Runtime intra-op pool each, sequential execution (no inter-op pool), so instances never
oversubscribe the cores. The pool's idle workers sleep instead of spinning: they share the cores with Triton's gRPC
threads and the stub's IPC, and spinning cost 209-221 ms of CPU per deeplabv3_mobilenet request against 159 ms
without it, at 1.9-2.0 vs 2.6 infer/s (docs/performance.md, variant run). ``config.pbtxt`` parameters
``segserve.ort_intra_op_threads`` (0 = ONNX Runtime's own default) and ``segserve.ort_allow_spinning`` ("0"/"1")
override both.

Copies: a CPU input tensor is a numpy view of the backend's shared-memory region (python_backend
``src/pb_tensor.cc``, r24.10: CPU tensors are wrapped, not copied) and ONNX Runtime reads a contiguous numpy array in
place, so a single request reaches the session without a copy. Outputs are copied once into shared memory by the
backend when the response is sent; DLPack (``pb_utils.Tensor.from_dlpack``) avoids copies only between GPU frameworks,
so it buys nothing on this CPU path.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


def _parameter(config, key, default):
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return value if value != "" else default


def _instances(config):
    return max(1, sum(int(group.get("count", 1)) for group in config.get("instance_group", [])))


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        self.max_batch = int(config.get("max_batch_size", 0))
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = int(_parameter(config, "segserve.ort_intra_op_threads", max(1, _cores() // _instances(config))))
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         _parameter(config, "segserve.ort_allow_spinning", "0"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def _run(self, batch):
        return self.session.run(self.output_names, {self.input_name: batch})

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        responses = []
        try:
            if self.max_batch > 1 and len(arrays) > 1:
                sizes = [a.shape[0] for a in arrays]
                outs = self._run(np.concatenate(arrays))
                bounds = np.cumsum(sizes)[:-1]
                per_request = zip(*[np.split(o, bounds) for o in outs])
            else:
                per_request = (self._run(a) for a in arrays)
            for outs in per_request:
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(o)) for n, o in zip(self.output_names, outs)]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        except Exception as exc:  # report to the caller, keep serving
            message = f"{type(exc).__name__}: {exc}"
            responses = [pb_utils.InferenceResponse(error=pb_utils.TritonError(message)) for _ in requests]
        return responses
