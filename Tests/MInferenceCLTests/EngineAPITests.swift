import COpenCL
import Foundation
@testable import MInferenceCL
import Testing

/// A caller's OpenCL context, in-order queue without profiling, and buffers, as an engine owns them.
final class CallerObjects {
    let context: cl_context
    let queue: cl_command_queue
    let device: cl_device_id
    var buffers: [cl_mem] = []

    init(device: cl_device_id) throws {
        var status: cl_int = 0
        var id: cl_device_id? = device
        context = try #require(clCreateContext(nil, 1, &id, nil, nil, &status))
        queue = try #require(clCreateCommandQueue(context, device, 0, &status))
        self.device = device
    }

    /// A buffer of `bytes`, written (blocking) from the caller's queue.
    func buffer(_ bytes: [UInt8]) throws -> cl_mem {
        var status: cl_int = 0
        let mem = try #require(clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes.count, nil, &status))
        buffers.append(mem)
        #expect(bytes.withUnsafeBytes { clEnqueueWriteBuffer(queue, mem, cl_bool(CL_TRUE), 0, bytes.count, $0.baseAddress, 0, nil, nil) }
                == CL_SUCCESS)
        return mem
    }

    func read(_ mem: cl_mem, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        #expect(bytes.withUnsafeMutableBytes { clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), 0, count, $0.baseAddress, 0, nil, nil) }
                == CL_SUCCESS)
        return bytes
    }

    static func referenceCount(_ mem: cl_mem) -> cl_uint {
        var count: cl_uint = 0
        _ = clGetMemObjectInfo(mem, cl_mem_info(CL_MEM_REFERENCE_COUNT), MemoryLayout<cl_uint>.size, &count, nil)
        return count
    }

    deinit {
        for mem in buffers { clReleaseMemObject(mem) }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }
}

@Suite("Engine API: caller buffers and layouts, enqueue, chunked prefill, variable-length batches")
struct EngineAPITests {
    static let mixed = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2)])
    static let never = SparseOptions(denseFallback: .never, collectIndices: true)

    /// The caller's context, queue and buffers, q/k/v/output in `[B, N, H, d]` at a non-zero offset
    /// of larger buffers: the output equals the contiguous path's bit for bit, the bytes around the
    /// view are untouched, and the caller's objects outlive the library's.
    @Test(arguments: [DType.f16, .f32])
    func callersBuffersInTokenMajorLayout(_ dtype: DType) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(batch: 2, headsQ: 4, headsKV: 2, queryLength: 300, keyLength: 300, headDim: 64, inputDType: dtype)
        let (q, k, v) = problem.normalInputs(seed: 91)
        let (expected, _) = try engine.run(q: q, k: k, v: v, plan: Self.mixed, options: Self.never)

        let caller = try CallerObjects(device: engine.context.clDevice)
        let offset = 24 // elements, a multiple of 8
        let element = dtype.byteCount
        let sentinel = [UInt8](repeating: 0xA5, count: offset * element)
        func placed(_ t: Tensor) -> [UInt8] {
            sentinel + t.tokenMajorBytes() + sentinel
        }
        let outputBytes = problem.queryShape.reduce(1, *) * element
        let poisoned = try Tensor(shape: problem.queryShape, dtype: dtype, values: .init(repeating: .nan, count: problem.queryShape.reduce(1, *)))
        let memQ = try caller.buffer(placed(q)), memK = try caller.buffer(placed(k)), memV = try caller.buffer(placed(v))
        let memO = try caller.buffer(placed(poisoned))
        do {
            let context = try ComputeContext(wrapping: caller.context, device: caller.device, queue: caller.queue)
            let wrapped = AttentionEngine(context: context)
            func view(_ mem: cl_mem, _ shape: [Int]) throws -> DeviceTensor {
                try DeviceTensor(wrapping: mem, dtype: dtype, shape: shape, strides: DeviceTensor.tokenMajorStrides(shape), offset: offset)
            }
            let event = try wrapped.enqueue(problem: problem, q: view(memQ, problem.queryShape), k: view(memK, problem.keyShape),
                                            v: view(memV, problem.keyShape), output: view(memO, problem.queryShape),
                                            plan: Self.mixed, options: Self.never)
            try event.wait()
        }
        #expect(clFinish(caller.queue) == CL_SUCCESS)
        let raw = caller.read(memO, count: outputBytes + 2 * sentinel.count)
        #expect(Array(raw.prefix(sentinel.count)) == sentinel && Array(raw.suffix(sentinel.count)) == sentinel,
                "bytes outside the output view changed")
        #expect(Array(raw[sentinel.count..<(sentinel.count + outputBytes)]) == expected.tokenMajorBytes(),
                "the [B, N, H, d] view at offset \(offset) differs from the contiguous path")
        // Every library object is gone: each buffer holds only the caller's reference.
        for mem in [memQ, memK, memV, memO] { #expect(CallerObjects.referenceCount(mem) == 1) }
    }

    @Test("Views that do not fit their buffer, or that the kernels cannot read, are refused")
    func badViews() throws {
        let engine = try TestDevice.engine()
        let context = engine.context
        let buffer = try DeviceBuffer(context: context, byteCount: 2 * 4 * 64 * 64 * 2, label: "views")
        #expect(throws: AttentionError.invalidArgument("the view (shape [2, 4, 64, 64], strides [16384, 4096, 64, 1], offset 8, f16) reaches element 32776, past the end of a buffer of 65536 bytes (32768 elements)")) {
            try DeviceTensor(buffer: buffer, dtype: .f16, shape: [2, 4, 64, 64], offset: 8)
        }
        #expect(throws: AttentionError.shape("the head-dim stride is 2; the channels of a row must be contiguous (stride 1)")) {
            try DeviceTensor(buffer: buffer, dtype: .f16, shape: [4, 64, 32], strides: [2048, 64, 2])
        }
        #expect(throws: AttentionError.shape("3 strides [4096, 64, 1] for the 4 dimensions of shape [2, 4, 64, 64]")) {
            try DeviceTensor(buffer: buffer, dtype: .f16, shape: [2, 4, 64, 64], strides: [4096, 64, 1])
        }
        #expect(throws: AttentionError.shape("stride -64 of dimension 1 is negative; negative strides are not supported")) {
            try DeviceTensor(buffer: buffer, dtype: .f16, shape: [4, 64, 64], strides: [4096, -64, 1], offset: 4096)
        }
        let problem = try AttentionProblem(headsQ: 4, headsKV: 4, queryLength: 64, keyLength: 64, headDim: 64, inputDType: .f16)
        let good = try DeviceTensor(context: context, shape: [4, 64, 64], dtype: .f16)
        let out = try DeviceTensor(context: context, shape: [4, 64, 64], dtype: .f16)
        let misaligned = try DeviceTensor(buffer: buffer, dtype: .f16, shape: [4, 64, 64], offset: 3)
        #expect(throws: AttentionError.invalidArgument("q's offset 3 and strides [4096, 64, 1] must be multiples of 8 elements (rows 16-byte aligned)")) {
            try engine.enqueue(problem: problem, q: misaligned, k: good, v: good, output: out, plan: .uniform(.dense, heads: 4))
        }
        let overlapping = try DeviceTensor(buffer: out.buffer, dtype: .f16, shape: [4, 64, 64], strides: [64, 64, 1])
        #expect(throws: AttentionError.invalidArgument("the output's strides [64, 64, 1] make elements overlap")) {
            try engine.enqueue(problem: problem, q: good, k: good, v: good, output: overlapping, plan: .uniform(.dense, heads: 4))
        }
        #expect(throws: AttentionError.invalidArgument("the output overlaps k in the same buffer")) {
            try engine.enqueue(problem: problem, q: out, k: good, v: good, output: good, plan: .uniform(.dense, heads: 4))
        }
        let other = try ComputeContext(device: context.device)
        let foreign = try DeviceTensor(context: other, shape: [4, 64, 64], dtype: .f16)
        #expect(throws: AttentionError.invalidArgument("k's buffer belongs to another OpenCL context than the engine's")) {
            try engine.enqueue(problem: problem, q: good, k: foreign, v: good, output: out, plan: .uniform(.dense, heads: 4))
        }
    }

    /// `enqueue` returns before the device is done: on a long problem the returned event has not
    /// completed when the call returns, and the host can work meanwhile.
    @Test func enqueueReturnsBeforeTheKernelEnds() throws {
        let engine = AttentionEngine(context: try ComputeContext(device: TestDevice.engine().context.device))
        let context = engine.context
        let problem = try AttentionProblem(headsQ: 8, headsKV: 8, queryLength: 2048, keyLength: 2048, headDim: 128, inputDType: .f32)
        let (q, k, v) = problem.normalInputs(seed: 5)
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f32)
        let plan = LayerPlan.uniform(.dense, heads: 8)
        _ = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan) // builds the program
        try out.poison()
        try context.finish()
        let event = try engine.enqueue(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan)
        var status: cl_int = 0
        _ = clGetEventInfo(event.clEvent, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS), MemoryLayout<cl_int>.size, &status, nil)
        #expect(status != CL_COMPLETE, "the layer had already finished when enqueue returned")
        try event.wait()
        #expect(allFinite(try out.download()))
    }

    /// Events from the caller order the layer behind the caller's own commands: a user event that
    /// the host completes later holds the layer back.
    @Test func enqueueWaitsForTheCallersEvents() throws {
        let engine = AttentionEngine(context: try ComputeContext(device: TestDevice.engine().context.device))
        let context = engine.context
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 100, keyLength: 100, headDim: 64, inputDType: .f32)
        let (q, k, v) = problem.normalInputs(seed: 6)
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f32)
        var status: cl_int = 0
        let gate = try #require(clCreateUserEvent(context.clContext, &status))
        let gateEvent = try CommandEvent(retaining: gate)
        clReleaseEvent(gate)
        let event = try engine.enqueue(problem: problem, q: dq, k: dk, v: dv, output: out, plan: Self.mixed,
                                       options: Self.never, waitingFor: [gateEvent])
        Thread.sleep(forTimeInterval: 0.2)
        var execution: cl_int = 0
        _ = clGetEventInfo(event.clEvent, cl_event_info(CL_EVENT_COMMAND_EXECUTION_STATUS), MemoryLayout<cl_int>.size, &execution, nil)
        #expect(execution != CL_COMPLETE, "the layer ran before the event it waits for")
        #expect(clSetUserEventStatus(gateEvent.clEvent, CL_COMPLETE) == CL_SUCCESS)
        try event.wait()
        let (expected, _) = try engine.run(q: q, k: k, v: v, plan: Self.mixed, options: Self.never)
        #expect(try out.download() == expected)
    }
}
