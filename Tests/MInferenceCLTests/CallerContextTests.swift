import COpenCL
@testable import MInferenceCL
import Testing

/// The library on a caller's OpenCL objects: the caller's context and a queue without profiling,
/// results as on the library's own context, the caller's objects valid and releasable afterwards.
@Suite("Caller-owned context and queue")
struct CallerContextTests {
    static func referenceCount(_ context: cl_context) -> cl_uint {
        var count: cl_uint = 0
        _ = clGetContextInfo(context, cl_context_info(CL_CONTEXT_REFERENCE_COUNT), MemoryLayout<cl_uint>.size, &count, nil)
        return count
    }

    @Test func wrapsACallersContextAndQueue() throws {
        var device: cl_device_id? = try TestDevice.engine().context.clDevice
        var status: cl_int = 0
        let context = try #require(clCreateContext(nil, 1, &device, nil, nil, &status))
        #expect(status == CL_SUCCESS)
        let queue = try #require(clCreateCommandQueue(context, device, 0, &status)) // no profiling
        let callersReferences = Self.referenceCount(context) // the caller's own, and its queue's
        do {
            let wrapped = try ComputeContext(wrapping: context, device: device!, queue: queue)
            #expect(!wrapped.profiling && wrapped.clContext == context && wrapped.clQueue == queue)
            #expect(Self.referenceCount(context) > callersReferences)
            let engine = AttentionEngine(context: wrapped)
            let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 300, keyLength: 300, headDim: 64, inputDType: .f16)
            let inputs = try RandomInputs(problem: problem, seed: 41)
            let plan = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2)])
            let check = try SparseCheck(engine: engine, problem: problem, q: inputs.q, k: inputs.k, v: inputs.v, plan: plan,
                                        estimation: .fused)
            try check.verify()
            let (_, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan,
                                             options: SparseOptions(denseFallback: .never))
            #expect(!report.totalTiming.isAvailable, "a queue without profiling has no timings")
            #expect(report.totalTiming.totalMilliseconds == 0)
            let tensor = try DeviceTensor(context: wrapped, shape: [2, 8], dtype: .f32)
            var size = 0
            #expect(clGetMemObjectInfo(tensor.clMem, cl_mem_info(CL_MEM_SIZE), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS && size >= 64)
        }
        // Everything the library made is gone: the caller's references are the only ones left, and
        // the caller's queue still works.
        #expect(Self.referenceCount(context) == callersReferences)
        #expect(clFinish(queue) == CL_SUCCESS)
        #expect(clReleaseCommandQueue(queue) == CL_SUCCESS)
        #expect(clReleaseContext(context) == CL_SUCCESS)
    }

    @Test func refusesQueuesItCannotUse() throws {
        var device: cl_device_id? = try TestDevice.engine().context.clDevice
        var status: cl_int = 0
        let first = try #require(clCreateContext(nil, 1, &device, nil, nil, &status))
        let second = try #require(clCreateContext(nil, 1, &device, nil, nil, &status))
        defer { clReleaseContext(first); clReleaseContext(second) }
        let otherQueue = try #require(clCreateCommandQueue(second, device, 0, &status))
        defer { clReleaseCommandQueue(otherQueue) }
        #expect(throws: AttentionError.invalidArgument("the queue belongs to another context")) {
            try ComputeContext(wrapping: first, device: device!, queue: otherQueue)
        }
        if let outOfOrder = clCreateCommandQueue(first, device, cl_command_queue_properties(CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE), &status),
           status == CL_SUCCESS {
            defer { clReleaseCommandQueue(outOfOrder) }
            #expect(throws: AttentionError.invalidArgument("the queue executes out of order; the library needs an in-order queue")) {
                try ComputeContext(wrapping: first, device: device!, queue: outOfOrder)
            }
        }
        // nothing retained: `first` holds the caller's reference, `second` that and its queue's
        #expect(Self.referenceCount(first) == 1 && Self.referenceCount(second) == 2)
    }
}
