import COpenCL

/// One argument of a kernel launch.
package enum KernelArgument {
    case buffer(DeviceBuffer)
    case int(Int32)
    case uint(UInt32)
    case ulong(UInt64)
    case float(Float)
    /// A tensor's layout_t (attention_common.h): a ulong4 of offset and batch, head, token strides.
    case layout(TensorLayout)
    /// Dynamic local memory of this many bytes.
    case local(Int)

    package static func int(_ value: Int) -> KernelArgument { .int(Int32(value)) }

    /// A float64 value as three fp32 arguments, each the nearest float to what the ones before
    /// leave (mass_threshold.h `exact_parameter` adds them in fp64 back to exactly `value`): an
    /// OpenCL 1.2 device need not take `double` arguments, and two floats hold only 48 bits.
    package static func exactDouble(_ value: Double) -> [KernelArgument] {
        let high = Float(value)
        let middle = Float(value - Double(high))
        let low = Float(value - Double(high) - Double(middle))
        return [.float(high), .float(middle), .float(low)]
    }
}

/// A `cl_kernel` made for one launch (kernel objects are not thread-safe to set up, so each
/// launch gets its own); released in `deinit`.
final class Kernel {
    let kernel: cl_kernel
    let name: String
    let program: Program

    init(program: Program, name: String) throws {
        var status: cl_int = 0
        guard let kernel = clCreateKernel(program.program, name, &status), status == CL_SUCCESS else {
            throw OpenCLError(status: status, call: "clCreateKernel(\(name))", device: program.deviceName)
        }
        self.kernel = kernel
        self.name = name
        self.program = program
        LiveObjects.counters.kernels.increment()
    }

    deinit {
        clReleaseKernel(kernel)
        LiveObjects.counters.kernels.decrement()
    }

    func set(_ arguments: [KernelArgument]) throws {
        for (i, argument) in arguments.enumerated() {
            let index = cl_uint(i)
            let status: cl_int
            switch argument {
            case .buffer(let b):
                var mem: cl_mem? = b.mem
                status = clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &mem)
            case .int(var v): status = clSetKernelArg(kernel, index, 4, &v)
            case .uint(var v): status = clSetKernelArg(kernel, index, 4, &v)
            case .ulong(var v): status = clSetKernelArg(kernel, index, 8, &v)
            case .float(var v): status = clSetKernelArg(kernel, index, 4, &v)
            case .layout(let l):
                var v = SIMD4<UInt64>(UInt64(l.offset), UInt64(l.batchStride), UInt64(l.headStride), UInt64(l.tokenStride))
                status = clSetKernelArg(kernel, index, 32, &v)
            case .local(let bytes): status = clSetKernelArg(kernel, index, bytes, nil)
            }
            try check(status, "clSetKernelArg(\(name), \(i))", device: program.deviceName)
        }
    }
}

/// An enqueued command (or a span of commands between two events), with its `cl_event`: the
/// result of `AttentionEngine.enqueue`, and what timings are read from. Holds one reference to the
/// event and releases exactly that.
public final class CommandEvent: @unchecked Sendable {
    let event: cl_event
    /// For a span: the event that opened it (this one closes it).
    let opening: CommandEvent?
    /// What ran, for timing reports (e.g. a kernel name).
    public let label: String

    init(event: cl_event, label: String) {
        self.event = event
        self.opening = nil
        self.label = label
        LiveObjects.counters.events.increment()
    }

    /// The span from `first`'s start to `last`'s end (markers around a library call).
    package init(spanning first: CommandEvent, _ last: CommandEvent, label: String) {
        clRetainEvent(last.event)
        self.event = last.event
        self.opening = first
        self.label = label
        LiveObjects.counters.events.increment()
    }

    /// Wraps a caller's event, e.g. to pass to `AttentionEngine.enqueue(waitingFor:)`: retains it
    /// and releases that reference with this object (the caller keeps its own). Throws
    /// `OpenCLError` when `event` is not a valid event.
    public convenience init(retaining event: cl_event, label: String = "caller's event") throws {
        try check(clRetainEvent(event), "clRetainEvent")
        self.init(event: event, label: label)
    }

    /// The OpenCL event (valid while this object lives; retain it to keep it longer).
    public var clEvent: cl_event { event }

    deinit {
        clReleaseEvent(event)
        LiveObjects.counters.events.decrement()
    }

    /// Waits until the command has finished. Throws ``OpenCLError`` when the command failed.
    public func wait() throws {
        var e: cl_event? = event
        try check(clWaitForEvents(1, &e), "clWaitForEvents(\(label))")
    }

    private func timestamp(_ param: Int32) throws -> UInt64 {
        var value: cl_ulong = 0
        try check(clGetEventProfilingInfo(event, cl_profiling_info(param), 8, &value, nil),
                  "clGetEventProfilingInfo(\(label))")
        return value
    }

    /// Start and end on the device clock, in nanoseconds (waits for the command first). Throws
    /// `OpenCLError` (`CL_PROFILING_INFO_NOT_AVAILABLE`) on a queue without profiling.
    public func interval() throws -> (start: UInt64, end: UInt64) {
        try wait()
        let end = try timestamp(CL_PROFILING_COMMAND_END)
        let start = try opening.map { try $0.interval().start } ?? timestamp(CL_PROFILING_COMMAND_START)
        return (start, max(start, end))
    }

    /// `interval()`, or nil when the command's queue records no profiling information (a caller's
    /// queue made without `CL_QUEUE_PROFILING_ENABLE`); waits for the command either way.
    func profiledInterval() throws -> (start: UInt64, end: UInt64)? {
        try wait()
        var value: cl_ulong = 0
        if clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &value, nil) == CL_PROFILING_INFO_NOT_AVAILABLE {
            return nil
        }
        return try interval()
    }

    /// Device time of the command in milliseconds.
    public func milliseconds() throws -> Double {
        let (start, end) = try interval()
        return Double(end &- start) / 1e6
    }
}

extension ComputeContext {
    /// Enqueues a marker that completes when `events` (none: every command enqueued before it) have.
    package func marker(waitingFor events: [CommandEvent], label: String = "marker") throws -> CommandEvent {
        let handles: [cl_event?] = events.map { $0.event }
        var marker: cl_event?
        let status = handles.withUnsafeBufferPointer {
            clEnqueueMarkerWithWaitList(queue, cl_uint(handles.count), handles.isEmpty ? nil : $0.baseAddress, &marker)
        }
        try check(status, "clEnqueueMarkerWithWaitList(\(handles.count) events)", device: device.info.name)
        return CommandEvent(event: marker!, label: label)
    }

    /// Enqueues `name` from `program` over `global` work-items in groups of `local`.
    /// Global sizes are rounded up to a multiple of the local size. Returns the profiled event.
    @discardableResult
    package func launch(_ program: Program, _ name: String, global: [Int], local: [Int]?,
                _ arguments: [KernelArgument]) throws -> CommandEvent {
        let kernel = try Kernel(program: program, name: name)
        try kernel.set(arguments)
        var globalSize = global
        if let local {
            for i in globalSize.indices { globalSize[i] = (globalSize[i] + local[i] - 1) / local[i] * local[i] }
        }
        if globalSize.contains(0) {
            // Nothing to do; an empty marker keeps callers' timing code uniform.
            var event: cl_event?
            try check(clEnqueueMarkerWithWaitList(queue, 0, nil, &event), "clEnqueueMarkerWithWaitList", device: device.info.name)
            return CommandEvent(event: event!, label: name)
        }
        var event: cl_event?
        let status = globalSize.withUnsafeBufferPointer { g in
            if let local {
                return local.withUnsafeBufferPointer { l in
                    clEnqueueNDRangeKernel(queue, kernel.kernel, cl_uint(g.count), nil, g.baseAddress, l.baseAddress, 0, nil, &event)
                }
            }
            return clEnqueueNDRangeKernel(queue, kernel.kernel, cl_uint(g.count), nil, g.baseAddress, nil, 0, nil, &event)
        }
        try check(status, "clEnqueueNDRangeKernel(\(name), global \(globalSize), local \(local.map { "\($0)" } ?? "auto"))",
                  device: device.info.name)
        launches.withLock { $0[name, default: 0] += 1 }
        return CommandEvent(event: event!, label: name)
    }
}
