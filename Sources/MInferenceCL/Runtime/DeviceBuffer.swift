import COpenCL

/// A buffer in device memory: one the library allocated (`init(context:byteCount:label:)`), or
/// a caller's `cl_mem` (`init(wrapping:)`). Holds one reference to its `cl_mem` and releases
/// exactly that one.
public final class DeviceBuffer: @unchecked Sendable {
    let mem: cl_mem
    /// The underlying OpenCL buffer (valid while this object lives; a wrapped buffer stays the
    /// caller's to release).
    public var clMem: cl_mem { mem }
    /// Size in bytes: as requested (the allocation is rounded up to 16 bytes so empty tensors
    /// work), or the wrapped buffer's `CL_MEM_SIZE`.
    public let byteCount: Int
    /// The context that allocated it and whose queue its reads and writes use; nil for a wrapped
    /// buffer, which is read through an engine's context (`DeviceTensor.download(using:)`).
    let owner: ComputeContext?
    /// The OpenCL context the buffer lives in.
    let clContext: cl_context

    /// Allocates `byteCount` bytes. Refuses sizes over `CL_DEVICE_MAX_MEM_ALLOC_SIZE` (or the
    /// context's memory limit) with a `DeviceMemoryError` before asking the driver.
    public init(context: ComputeContext, byteCount: Int, label: String = "buffer") throws {
        let info = context.device.info
        guard byteCount >= 0 else { throw DeviceMemoryError.negativeSize(label: label, bytes: byteCount) }
        if byteCount > context.maxAllocation || byteCount > Int.max - 16 {
            throw DeviceMemoryError.overAllocationLimit(label: label, bytes: byteCount, limit: context.maxAllocation, device: info.name,
                                                       limitName: context.allocationLimitName)
        }
        var status: cl_int = 0
        let size = max(16, (byteCount + 15) / 16 * 16)
        guard let mem = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status),
              status == CL_SUCCESS else {
            throw OpenCLError(status: status, call: "clCreateBuffer(\(label), \(byteCount) bytes)", device: info.name)
        }
        self.mem = mem
        self.byteCount = byteCount
        self.owner = context
        self.clContext = context.context
        if context.holdsBufferMemory {
            clRetainMemObject(mem)
            let address = Int(bitPattern: mem)
            context.heldMemory.withLock { $0.append(address) }
        }
        LiveObjects.counters.buffers.increment()
        context.allocations.increment()
    }

    /// Wraps a caller's buffer: retains `mem` (released again when this object goes away; the
    /// caller keeps its own reference). Throws `OpenCLError` when `mem` is not a valid buffer.
    public init(wrapping mem: cl_mem) throws {
        var size = 0
        try check(clGetMemObjectInfo(mem, cl_mem_info(CL_MEM_SIZE), MemoryLayout<Int>.size, &size, nil), "clGetMemObjectInfo(CL_MEM_SIZE)")
        var type: cl_mem_object_type = 0
        try check(clGetMemObjectInfo(mem, cl_mem_info(CL_MEM_TYPE), MemoryLayout<cl_mem_object_type>.size, &type, nil),
                  "clGetMemObjectInfo(CL_MEM_TYPE)")
        guard type == cl_mem_object_type(CL_MEM_OBJECT_BUFFER) else {
            throw AttentionError.invalidArgument("the cl_mem is not a buffer (CL_MEM_TYPE \(type)); images and pipes cannot hold tensors")
        }
        var memContext: cl_context?
        try check(clGetMemObjectInfo(mem, cl_mem_info(CL_MEM_CONTEXT), MemoryLayout<cl_context?>.size, &memContext, nil),
                  "clGetMemObjectInfo(CL_MEM_CONTEXT)")
        guard let memContext else { throw AttentionError.invalidArgument("the buffer reports no OpenCL context") }
        try check(clRetainMemObject(mem), "clRetainMemObject")
        self.mem = mem
        self.byteCount = size
        self.owner = nil
        self.clContext = memContext
        LiveObjects.counters.buffers.increment()
    }

    deinit {
        clReleaseMemObject(mem)
        LiveObjects.counters.buffers.decrement()
    }

    /// The context whose queue reads and writes this buffer: its owner, or `context` (which must
    /// share its OpenCL context) for a wrapped buffer.
    func queueContext(_ context: ComputeContext? = nil) throws -> ComputeContext {
        guard let chosen = context ?? owner else {
            throw AttentionError.invalidArgument("a wrapped buffer has no queue of its own: read and write it through a ComputeContext of its OpenCL context")
        }
        guard chosen.context == clContext else {
            throw AttentionError.invalidArgument("the buffer belongs to another OpenCL context than \(chosen.device.info.name)'s ComputeContext")
        }
        return chosen
    }

    /// Copies `bytes` into the buffer at `offset` (bytes) and waits for the copy, on the queue of
    /// the buffer's context (`context`: the one to use for a wrapped buffer). Throws
    /// `AttentionError.invalidArgument` for a range outside the buffer or a wrapped buffer without
    /// a context, `OpenCLError` when the copy fails.
    public func write(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, using context: ComputeContext? = nil) throws {
        guard bytes.count > 0 else { return }
        try checkRange(offset: offset, count: bytes.count, what: "write")
        let context = try queueContext(context)
        try check(clEnqueueWriteBuffer(context.queue, mem, cl_bool(CL_TRUE), offset, bytes.count, bytes.baseAddress, 0, nil, nil),
                  "clEnqueueWriteBuffer(\(bytes.count) bytes)", device: context.device.info.name)
    }

    /// Copies `bytes.count` bytes from the buffer at `offset` (bytes) and waits for the copy; the
    /// queue and errors as in `write(_:offset:using:)`.
    public func read(into bytes: UnsafeMutableRawBufferPointer, offset: Int = 0, using context: ComputeContext? = nil) throws {
        guard bytes.count > 0 else { return }
        try checkRange(offset: offset, count: bytes.count, what: "read")
        let context = try queueContext(context)
        try check(clEnqueueReadBuffer(context.queue, mem, cl_bool(CL_TRUE), offset, bytes.count, bytes.baseAddress, 0, nil, nil),
                  "clEnqueueReadBuffer(\(bytes.count) bytes)", device: context.device.info.name)
    }

    /// Enqueues a copy of `array` into the buffer without waiting (no host synchronisation): the
    /// host copy it reads from is freed by the write's completion callback. Returns the write.
    @discardableResult
    func enqueueWrite<T: BitwiseCopyable>(_ array: [T]) throws -> CommandEvent {
        let context = try queueContext()
        let count = array.count * MemoryLayout<T>.stride
        try checkRange(offset: 0, count: count, what: "write")
        let staging = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        array.withUnsafeBytes { staging.copyMemory(from: $0.baseAddress!, byteCount: count) }
        var event: cl_event?
        let status = clEnqueueWriteBuffer(context.queue, mem, cl_bool(CL_FALSE), 0, count, staging, 0, nil, &event)
        guard status == CL_SUCCESS, let event else {
            staging.deallocate()
            throw OpenCLError(status: status, call: "clEnqueueWriteBuffer(\(count) bytes, non-blocking)", device: context.device.info.name)
        }
        let freeStaging: @convention(c) (cl_event?, cl_int, UnsafeMutableRawPointer?) -> Void = { _, _, pointer in pointer?.deallocate() }
        let callback = clSetEventCallback(event, CL_COMPLETE, freeStaging, staging)
        if callback != CL_SUCCESS {
            // Without a callback the copy must finish before the staging memory goes.
            var e: cl_event? = event
            clWaitForEvents(1, &e)
            staging.deallocate()
        }
        return CommandEvent(event: event, label: "write")
    }

    private func checkRange(offset: Int, count: Int, what: String) throws {
        guard offset >= 0, count <= byteCount, offset <= byteCount - count else {
            throw AttentionError.invalidArgument("\(what) of \(count) bytes at offset \(offset) outside a device buffer of \(byteCount) bytes")
        }
    }

    /// Fills the first `byteCount` bytes with a repeated 4-byte pattern (e.g. a NaN poison).
    public func fill(pattern: UInt32, using context: ComputeContext? = nil) throws {
        guard byteCount > 0 else { return }
        let context = try queueContext(context)
        var value = pattern
        let size = byteCount % 4 == 0 ? byteCount : (owner != nil ? (byteCount + 3) / 4 * 4 : byteCount / 4 * 4)
        guard size > 0 else { return }
        try check(clEnqueueFillBuffer(context.queue, mem, &value, 4, 0, size, 0, nil, nil),
                  "clEnqueueFillBuffer", device: context.device.info.name)
    }

    /// Convenience: a buffer holding a copy of `array`.
    public convenience init<T>(context: ComputeContext, copying array: [T], label: String = "buffer") throws {
        try self.init(context: context, byteCount: array.count * MemoryLayout<T>.stride, label: label)
        try array.withUnsafeBytes { try write($0) }
    }

    /// Reads the whole buffer as `count` elements of `T`.
    public func read<T>(as: T.Type, count: Int) throws -> [T] where T: BitwiseCopyable {
        var out = [T](unsafeUninitializedCapacity: count) { _, n in n = count }
        try out.withUnsafeMutableBytes { try read(into: $0) }
        return out
    }
}

/// Device memory refused before or by the driver. `limitName` says which limit applied:
/// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` / `CL_DEVICE_GLOBAL_MEM_SIZE`, or the context's memory limit.
public enum DeviceMemoryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A buffer of a negative size was asked for: the buffer's label and the size in bytes.
    case negativeSize(label: String, bytes: Int)
    /// One buffer larger than a single allocation may be: its label, its size, the limit in bytes
    /// (``ComputeContext/maxAllocation``), the device's name and which limit applied.
    case overAllocationLimit(label: String, bytes: Int, limit: Int, device: String, limitName: String = "CL_DEVICE_MAX_MEM_ALLOC_SIZE")
    /// A request whose buffers together exceed the device's memory: what was asked for (the
    /// problem), the bytes it needs, the bytes available (``ComputeContext/memoryBudget``), the
    /// device's name and which limit applied.
    case overDeviceMemory(what: String, bytes: Int, available: Int, device: String, limitName: String = "CL_DEVICE_GLOBAL_MEM_SIZE")

    /// One line naming the buffer or request, the sizes and the limit.
    public var description: String {
        switch self {
        case .negativeSize(let label, let bytes):
            "cannot allocate \(label): negative size \(bytes)"
        case .overAllocationLimit(let label, let bytes, let limit, let device, let limitName):
            "\(label) needs \(bytes) bytes, over \(limitName) (\(limit) bytes) of \(device)"
        case .overDeviceMemory(let what, let bytes, let available, let device, let limitName):
            "\(what) needs \(bytes) bytes of device memory, more than \(device) offers (\(limitName): \(available) bytes)"
        }
    }
}
