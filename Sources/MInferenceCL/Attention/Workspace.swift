import Synchronization

/// Device buffers that a model's layer calls reuse: pass one `Workspace` to every
/// `AttentionEngine.run(...)` / `dense(...)` call of a forward pass and, after the first call at
/// the largest length and plan, the calls allocate nothing (`ComputeContext.allocationCount` stays
/// flat): head lists, budgets, the estimation's logits and scores, the top-k selections and the
/// block-form index lists all live here, one buffer per role, grown when a later call needs more.
/// Without a workspace each call allocates its own and frees it, as before.
///
/// A workspace belongs to one context and serves one call at a time (a call on another thread while
/// one runs throws `AttentionError.invalidArgument`; give each thread its own). Its memory is freed
/// with it.
public final class Workspace: @unchecked Sendable {
    /// The context whose engine's calls may use this workspace (another engine's context is
    /// refused with `AttentionError.invalidArgument`).
    public let context: ComputeContext
    private let buffers = Mutex<[String: DeviceBuffer]>([:])
    private let busy = Atomic<Bool>(false)

    /// An empty workspace on `context`: allocates nothing until a call needs a buffer.
    public init(context: ComputeContext) {
        self.context = context
    }

    /// Bytes the workspace holds on the device.
    public var byteCount: Int { buffers.withLock { $0.values.reduce(0) { $0 + $1.byteCount } } }

    /// The buffer of `role` with room for `byteCount` bytes: the one held if it is large enough,
    /// else a new one that replaces it.
    package func buffer(_ role: String, byteCount: Int) throws -> DeviceBuffer {
        try buffers.withLock { held in
            if let buffer = held[role], buffer.byteCount >= byteCount { return buffer }
            let buffer = try DeviceBuffer(context: context, byteCount: byteCount, label: role)
            held[role] = buffer
            return buffer
        }
    }

    /// Runs `body` as the workspace's one call at a time; throws if another call holds it.
    func serving<T>(_ engine: AttentionEngine, _ body: () throws -> T) throws -> T {
        guard engine.context === context else {
            throw AttentionError.invalidArgument("the workspace belongs to another context than the engine's")
        }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw AttentionError.invalidArgument("the workspace is in use by another call; give each thread its own")
        }
        defer { busy.store(false, ordering: .releasing) }
        return try body()
    }
}

/// Where a call's device buffers come from: its workspace, or fresh allocations.
struct Scratch {
    let context: ComputeContext
    let workspace: Workspace?

    /// A buffer of at least `byteCount` bytes for `role` (a name unique within one layer call).
    func buffer(_ role: String, byteCount: Int) throws -> DeviceBuffer {
        guard let workspace else { return try DeviceBuffer(context: context, byteCount: byteCount, label: role) }
        return try workspace.buffer(role, byteCount: byteCount)
    }

    /// `array` copied into the buffer of `role` by a write enqueued before the commands that read
    /// it (the host does not wait for it).
    func copying<T: BitwiseCopyable>(_ array: [T], _ role: String) throws -> DeviceBuffer {
        let buffer = try self.buffer(role, byteCount: array.count * MemoryLayout<T>.stride)
        if !array.isEmpty { try buffer.enqueueWrite(array) }
        return buffer
    }
}
