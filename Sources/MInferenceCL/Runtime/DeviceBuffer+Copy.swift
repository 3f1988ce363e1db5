import COpenCL

extension DeviceBuffer {
    /// Enqueues a device-side copy of `byteCount` bytes from `source` at `sourceOffset` to this
    /// buffer at `offset` (the in-order queue runs it before later commands; no wait).
    package func copy(from source: DeviceBuffer, sourceOffset: Int, offset: Int, byteCount: Int) throws {
        guard byteCount > 0 else { return }
        precondition(sourceOffset + byteCount <= source.byteCount && offset + byteCount <= self.byteCount,
                     "device copy past the end of a buffer")
        let context = try queueContext()
        try check(clEnqueueCopyBuffer(context.queue, source.mem, mem, sourceOffset, offset, byteCount, 0, nil, nil),
                  "clEnqueueCopyBuffer(\(byteCount) bytes)", device: context.device.info.name)
    }
}
