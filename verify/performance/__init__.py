"""``aicp verify --performance``: every GPU and the fabric measured against what they are sold as.

An opt-in run beside the CNCF probes (it never changes their verdicts, and without the flag
nothing here is imported): per GPU, DCGM diagnostics, dense matrix-multiply TFLOP/s (bf16, and
fp8 where the GPU has it) and memory bandwidth as fractions of the datasheet figure, and the
clock event (throttle) reasons seen during the load; per node, NCCL all-reduce over all its
GPUs against the GPU-to-GPU link figure; per pool, NCCL all-reduce across two or more nodes
over the fabric, the transport NCCL chose, and every node against the pool's median.

``catalog`` holds the published figures (a source per figure) and the default fractions;
``parse`` reads what the upstream tools print; ``judge`` turns measurements into verdicts
(pure); ``run`` creates the pods and collects their output; ``report`` writes the evidence.
"""
