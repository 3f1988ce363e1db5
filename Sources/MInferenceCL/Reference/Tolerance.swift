/// Accepted ‖out − ref‖/‖ref‖ of a kernel against the float64 reference, in one place (tests,
/// the demo, the device checks all read it). fp16 and fp32 are the bars; bf16 keeps 8
/// mantissa bits, so rounding the output alone costs ~2e-3 relative. A problem is held to the
/// looser of its input and output dtypes: 16-bit inputs take the tensor-core path, which rounds
/// the softmax weights to the input type, so an fp32 output of fp16 inputs is fp16-accurate.
package enum Tolerance {
    package static func relativeL2(_ problem: AttentionProblem) -> Double {
        max(relativeL2(problem.inputDType), relativeL2(problem.outputDType))
    }

    package static func relativeL2(_ dtype: DType) -> Double {
        switch dtype {
        case .f32: 1e-5
        case .f16: 2e-3
        case .bf16: 1e-2
        }
    }
}
