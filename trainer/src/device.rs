//! Choosing where to run: a real GPU through wgpu when there is one, Burn's `flex` CPU backend
//! otherwise. A CPU-type wgpu adapter (software Vulkan such as lavapipe) is never chosen
//! automatically: it is several times slower than `flex` here.

use burn::tensor::Device;
use clap::ValueEnum;

/// The `--device` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// A hardware GPU through wgpu when one is found, else the CPU.
    Auto,
    /// Burn's flex CPU backend.
    Cpu,
    /// A hardware GPU through wgpu; an error when there is none.
    Gpu,
    /// Any wgpu adapter, software ones included (for testing the wgpu path without a GPU).
    WgpuAny,
}

/// A chosen device and a line saying what it is.
pub struct Chosen {
    /// The device to run on.
    pub device: Device,
    /// Human-readable description.
    pub description: String,
}

/// Picks the device for `choice`.
pub fn choose(choice: DeviceChoice) -> anyhow::Result<Chosen> {
    let cpu = || Chosen {
        device: Device::flex(),
        description: "CPU (Burn flex backend)".to_string(),
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Auto => Ok(gpu(false).unwrap_or_else(cpu)),
        DeviceChoice::Gpu => gpu(false)
            .ok_or_else(|| anyhow::anyhow!("--device gpu: no hardware GPU adapter found by wgpu")),
        DeviceChoice::WgpuAny => gpu(true)
            .ok_or_else(|| anyhow::anyhow!("--device wgpu-any: wgpu found no adapter at all")),
    }
}

#[cfg(feature = "wgpu")]
fn gpu(allow_software: bool) -> Option<Chosen> {
    use burn::tensor::wgpu::wgpu;
    use burn::tensor::DeviceKind;

    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::all(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let infos: Vec<wgpu::AdapterInfo> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .iter()
            .map(|a| a.get_info())
            .collect();
    // Each device type counts from zero on its own, as Burn's DeviceKind does.
    let order = [
        wgpu::DeviceType::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu,
        wgpu::DeviceType::VirtualGpu,
        wgpu::DeviceType::Cpu,
    ];
    for ty in order {
        if ty == wgpu::DeviceType::Cpu && !allow_software {
            continue;
        }
        if let Some(info) = infos.iter().find(|i| i.device_type == ty) {
            let kind = match ty {
                wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
                wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
                wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(0),
                _ => DeviceKind::Cpu,
            };
            return Some(Chosen {
                device: Device::wgpu(kind),
                description: format!(
                    "GPU through wgpu: {} ({:?}, {:?})",
                    info.name, info.device_type, info.backend
                ),
            });
        }
    }
    None
}

#[cfg(not(feature = "wgpu"))]
fn gpu(_allow_software: bool) -> Option<Chosen> {
    None
}
