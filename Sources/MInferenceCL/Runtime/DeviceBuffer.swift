import COpenCL

/// A buffer in device memory; the single owner of its `cl_mem`.
public final class DeviceBuffer: @unchecked Sendable {
    let mem: cl_mem
    /// The underlying OpenCL buffer (owned by this object; valid while it lives).
    public var clMem: cl_mem { mem }
    /// Size in bytes as requested (the allocation is rounded up to 16 bytes so empty tensors work).
    public let byteCount: Int
    let context: ComputeContext

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
        self.context = context
        if context.holdsBufferMemory {
            clRetainMemObject(mem)
            let address = Int(bitPattern: mem)
            context.heldMemory.withLock { $0.append(address) }
        }
        LiveObjects.counters.buffers.increment()
        context.allocations.increment()
    }

    deinit {
        clReleaseMemObject(mem)
        LiveObjects.counters.buffers.decrement()
    }

    /// Copies `bytes` into the buffer at `offset` and waits for the copy. Throws
    /// `AttentionError.invalidArgument` for a range outside the buffer.
    public func write(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) throws {
        guard bytes.count > 0 else { return }
        try checkRange(offset: offset, count: bytes.count, what: "write")
        try check(clEnqueueWriteBuffer(context.queue, mem, cl_bool(CL_TRUE), offset, bytes.count, bytes.baseAddress, 0, nil, nil),
                  "clEnqueueWriteBuffer(\(bytes.count) bytes)", device: context.device.info.name)
    }

    /// Copies `bytes.count` bytes from the buffer at `offset` and waits for the copy. Throws
    /// `AttentionError.invalidArgument` for a range outside the buffer.
    public func read(into bytes: UnsafeMutableRawBufferPointer, offset: Int = 0) throws {
        guard bytes.count > 0 else { return }
        try checkRange(offset: offset, count: bytes.count, what: "read")
        try check(clEnqueueReadBuffer(context.queue, mem, cl_bool(CL_TRUE), offset, bytes.count, bytes.baseAddress, 0, nil, nil),
                  "clEnqueueReadBuffer(\(bytes.count) bytes)", device: context.device.info.name)
    }

    private func checkRange(offset: Int, count: Int, what: String) throws {
        guard offset >= 0, count <= byteCount, offset <= byteCount - count else {
            throw AttentionError.invalidArgument("\(what) of \(count) bytes at offset \(offset) outside a device buffer of \(byteCount) bytes")
        }
    }

    /// Fills the first `byteCount` bytes with a repeated 4-byte pattern (e.g. a NaN poison).
    public func fill(pattern: UInt32) throws {
        guard byteCount > 0 else { return }
        var value = pattern
        let size = (byteCount + 3) / 4 * 4
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
    case negativeSize(label: String, bytes: Int)
    case overAllocationLimit(label: String, bytes: Int, limit: Int, device: String, limitName: String = "CL_DEVICE_MAX_MEM_ALLOC_SIZE")
    case overDeviceMemory(what: String, bytes: Int, available: Int, device: String, limitName: String = "CL_DEVICE_GLOBAL_MEM_SIZE")

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
