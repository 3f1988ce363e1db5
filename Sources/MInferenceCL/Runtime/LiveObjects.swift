import Synchronization

/// How many OpenCL objects this library holds right now, per kind: each owning Swift object
/// counts itself in `init` and out in `deinit`, so leak checks can compare counts before and
/// after a workload (a count that only grows is a leak).
package struct LiveObjects: Sendable, Hashable, CustomStringConvertible {
    /// `cl_context` + `cl_command_queue` pairs (`ComputeContext`).
    package var contexts: Int
    /// Built `cl_program`s (`Program`).
    package var programs: Int
    /// `cl_kernel`s (one per launch, released when the launch is enqueued).
    package var kernels: Int
    /// `cl_mem` buffers (`DeviceBuffer`).
    package var buffers: Int
    /// `cl_event`s kept for timing (`CommandEvent`).
    package var events: Int

    package init(contexts: Int = 0, programs: Int = 0, kernels: Int = 0, buffers: Int = 0, events: Int = 0) {
        self.contexts = contexts
        self.programs = programs
        self.kernels = kernels
        self.buffers = buffers
        self.events = events
    }

    /// No object held.
    package static let none = LiveObjects()

    /// The counts now.
    package static var now: LiveObjects {
        LiveObjects(contexts: counters.contexts.load(ordering: .relaxed), programs: counters.programs.load(ordering: .relaxed),
                    kernels: counters.kernels.load(ordering: .relaxed), buffers: counters.buffers.load(ordering: .relaxed),
                    events: counters.events.load(ordering: .relaxed))
    }

    package var description: String {
        "contexts \(contexts), programs \(programs), kernels \(kernels), buffers \(buffers), events \(events)"
    }

    static let counters = Counters()

    final class Counters: Sendable {
        let contexts = Atomic<Int>(0)
        let programs = Atomic<Int>(0)
        let kernels = Atomic<Int>(0)
        let buffers = Atomic<Int>(0)
        let events = Atomic<Int>(0)
    }
}

extension Atomic where Value == Int {
    func increment() { wrappingAdd(1, ordering: .relaxed) }
    func decrement() { wrappingSubtract(1, ordering: .relaxed) }
}
