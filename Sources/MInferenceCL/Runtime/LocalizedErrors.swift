import FoundationEssentials

/// Every public error of the library is a `LocalizedError` whose `errorDescription` is its one-line
/// message (the first line of `description`; a build error's log follows in `failureReason`), so
/// `error.localizedDescription` says what went wrong wherever Foundation reports it.
protocol OneLineLocalizedError: LocalizedError, CustomStringConvertible {}

extension OneLineLocalizedError {
    public var errorDescription: String? { String(description.split(separator: "\n", maxSplits: 1).first ?? "") }
    public var failureReason: String? {
        let lines = description.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        return lines.count > 1 ? String(lines[1]) : nil
    }
}

extension AttentionError: OneLineLocalizedError {}
extension KernelSourceError: OneLineLocalizedError {}
extension CLBlastError: OneLineLocalizedError {}
extension DeviceMemoryError: OneLineLocalizedError {}
extension OpenCLError: OneLineLocalizedError {}
extension ProgramBuildError: OneLineLocalizedError {}
extension DeviceSelectionError: OneLineLocalizedError {}
extension PatternConfigError: OneLineLocalizedError {}
extension TensorFileError: OneLineLocalizedError {}
