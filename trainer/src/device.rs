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
    /// The device to run on (the first of `replicas`).
    pub device: Device,
    /// Human-readable description.
    pub description: String,
    /// The devices of a data-parallel run, `device` first: adapters 0..n of the chosen kind
    /// (on the CPU, n handles on the same flex backend, which share its cores).
    pub replicas: Vec<Device>,
}

/// Picks the device for `choice`.
pub fn choose(choice: DeviceChoice) -> anyhow::Result<Chosen> {
    choose_replicas(choice, 1)
}

/// Picks `n` devices of one kind for `choice`, for data-parallel training.
pub fn choose_replicas(choice: DeviceChoice, n: usize) -> anyhow::Result<Chosen> {
    let cpu = || Chosen {
        device: Device::flex(),
        description: if n == 1 {
            "CPU (Burn flex backend)".to_string()
        } else {
            format!("CPU (Burn flex backend), {n} data-parallel replicas sharing its cores")
        },
        replicas: vec![Device::flex(); n],
    };
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Auto => Ok(gpu(false, n)?.unwrap_or_else(cpu)),
        DeviceChoice::Gpu => gpu(false, n)?
            .ok_or_else(|| anyhow::anyhow!("--device gpu: no hardware GPU adapter found by wgpu")),
        DeviceChoice::WgpuAny => gpu(true, n)?
            .ok_or_else(|| anyhow::anyhow!("--device wgpu-any: wgpu found no adapter at all")),
    }
}

/// The first adapter kind that wgpu finds (hardware kinds first), as `n` devices of that kind;
/// an error when there are fewer than `n` of it.
#[cfg(feature = "wgpu")]
fn gpu(allow_software: bool, n: usize) -> anyhow::Result<Option<Chosen>> {
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
        let of_kind: Vec<&wgpu::AdapterInfo> =
            infos.iter().filter(|i| i.device_type == ty).collect();
        let Some(info) = of_kind.first() else {
            continue;
        };
        // (A software adapter is one device: its replicas share it, like flex's.)
        if ty != wgpu::DeviceType::Cpu && of_kind.len() < n {
            anyhow::bail!(
                "--data-parallel {n}: wgpu found {} {:?} adapter(s)",
                of_kind.len(),
                ty
            );
        }
        let kind = |i: usize| match ty {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(i),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(i),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(i),
            _ => DeviceKind::Cpu,
        };
        let replicas: Vec<Device> = (0..n).map(|i| Device::wgpu(kind(i))).collect();
        let mut description = format!(
            "GPU through wgpu: {} ({:?}, {:?})",
            info.name, info.device_type, info.backend
        );
        if n > 1 {
            description.push_str(&format!(", {n} data-parallel devices"));
        }
        return Ok(Some(Chosen {
            device: replicas[0].clone(),
            description,
            replicas,
        }));
    }
    Ok(None)
}

#[cfg(not(feature = "wgpu"))]
fn gpu(_allow_software: bool, _n: usize) -> anyhow::Result<Option<Chosen>> {
    Ok(None)
}
